"""server/signatures.py: SignatureDefs read into plain Python, and --enable_signature_method_name_check."""
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from server.errors import ServingError
from server.signatures import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, Signature, check_method_name


def sig(method):
    proto = meta_graph_pb2.SignatureDef(method_name=method)
    proto.inputs["x"].name, proto.inputs["x"].dtype = "x:0", types_pb2.DT_FLOAT
    proto.inputs["x"].tensor_shape.dim.add(size=-1)
    proto.outputs["y"].name, proto.outputs["y"].dtype = "y:0", types_pb2.DT_FLOAT
    return Signature.from_proto("s", proto)


def test_from_proto():
    s = sig(PREDICT_METHOD)
    assert s.method_name == PREDICT_METHOD and s.inputs["x"].shape == (-1,) and s.inputs["x"].model_dtype is None
    assert s.inputs["x"].shape_text() == "[-1]" and s.outputs["y"].tensor_name == "y:0"


def test_method_name_check_off_accepts_every_signature():
    # TF Serving's default: native TF2 models (all signatures say predict) can be classified and regressed.
    for method in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD, "", "custom/method"):
        for api in ("predict", "classify", "regress"):
            check_method_name(sig(method), api, enabled=False)


def test_method_name_check_on_is_tf_servings():
    for method in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        check_method_name(sig(method), "predict", enabled=True)
    check_method_name(sig(CLASSIFY_METHOD), "classify", enabled=True)
    check_method_name(sig(REGRESS_METHOD), "regress", enabled=True)
    with pytest.raises(ServingError) as e:  # predict_util.cc: an INTERNAL error
        check_method_name(sig("custom/method"), "predict", enabled=True)
    assert (e.value.code, e.value.message) == ("INTERNAL", (
        "Expected prediction signature method_name to be one of {tensorflow/serving/predict, "
        "tensorflow/serving/classify, tensorflow/serving/regress}. Was: custom/method"))
    with pytest.raises(ServingError) as e:  # classifier.cc
        check_method_name(sig(PREDICT_METHOD), "classify", enabled=True)
    assert (e.value.code, e.value.message) == ("INVALID_ARGUMENT", (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"))
    with pytest.raises(ServingError) as e:  # regressor.cc
        check_method_name(sig(CLASSIFY_METHOD), "regress", enabled=True)
    assert (e.value.code, e.value.message) == ("INVALID_ARGUMENT", (
        "Expected regression signature method_name to be tensorflow/serving/regress. "
        "Was: tensorflow/serving/classify"))
    with pytest.raises(ValueError):
        check_method_name(sig(PREDICT_METHOD), "explain", enabled=True)


def test_method_name_check_as_the_core_calls_it(testdata):
    # DataPlane(check_method_name=...) calls it with the API's method name when the flag is on.
    import numpy as np

    from server import config
    from server.dataplane import DataPlane, ModelSpec
    from server.lifecycle import ModelManager
    models = config.single_model("hpt", str(testdata / "saved_model_half_plus_two_cpu"))
    manager = ModelManager(models, file_system_poll_wait_seconds=0).start()
    try:
        assert manager.wait_until_settled(60)
        on, off = DataPlane(manager, check_method_name=check_method_name), DataPlane(manager)
        x = {"x": np.array([[2.0]], np.float32)}
        for plane in (on, off):
            assert plane.predict(ModelSpec("hpt"), x).outputs["y"].tolist() == [[3.0]]
        # regress_x_to_y is a regress signature: predict may run it; classify may not, with the flag on
        regress = ModelSpec("hpt", signature_name="regress_x_to_y")
        from tensorflow.core.example import example_pb2
        ex = example_pb2.Example()
        ex.features.feature["x"].float_list.value.append(80.0)
        examples = [ex.SerializeToString()]
        with pytest.raises(ServingError) as e:
            on.classify(regress, examples)
        assert e.value.message == ("Expected classification signature method_name to be "
                                   "tensorflow/serving/classify. Was: tensorflow/serving/regress")
        assert on.regress(regress, examples).outputs["outputs"].ravel().tolist() == [42.0]
    finally:
        manager.stop()


def test_method_name_check_off_through_the_core(testdata):
    from server import config
    from server.dataplane import DataPlane, ModelSpec
    from server.lifecycle import ModelManager
    manager = ModelManager(config.single_model("hpt", str(testdata / "saved_model_half_plus_two_cpu")),
                           file_system_poll_wait_seconds=0).start()
    try:
        assert manager.wait_until_settled(60)
        with pytest.raises(ServingError) as e:  # regress_x_to_y has no "classes"/"scores" outputs
            DataPlane(manager).classify(ModelSpec("hpt", signature_name="regress_x_to_y"), [b""])
        assert e.value.code == "INVALID_ARGUMENT" and "method_name to be" not in e.value.message
    finally:
        manager.stop()
