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
