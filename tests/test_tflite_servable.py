"""server/tflite_servable.py: TF Serving's TensorFlow Lite models (--prefer_tflite_model), served as its
TfLiteSession does."""
import concurrent.futures

import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from server import errors
from server.servable import load_servable
from server.validation import validate_inputs

PREDICT = "tensorflow/serving/predict"


def load(testdata, name, **kw):
    return load_servable(name, 123, str(testdata / name / "00000123"), prefer_tflite_model=True, **kw)


def predict(s, x, signature="serving_default"):
    sig = s.get_signature(signature)
    inputs = {"x": np.asarray(x, np.float32)}
    validate_inputs(inputs, sig)
    return s.run(sig, inputs)["y"]


def test_without_signature_defs_tf_servings_default_signature(testdata):
    # TF Serving (tflite_session.cc) synthesises serving_default from the model's input and output tensors.
    s = load(testdata, "saved_model_half_plus_two_tflite", num_tflite_pools=1)
    try:
        assert s.kind == "tflite" and list(s.signatures) == ["serving_default"]
        sig = s.get_signature("serving_default")
        assert sig.method_name == PREDICT
        assert [(k, v.tensor_name, v.dtype, v.shape) for k, v in sig.inputs.items()] == [
            ("x", "x", types_pb2.DT_FLOAT, (1, 1))]
        assert list(sig.outputs) == ["y"]
        assert set(s.signature_def_map()) == {"serving_default"}
        # TF Serving's own test: x = 2.0 sent with shape [1] answers 3.0
        np.testing.assert_array_equal(predict(s, [2.0]), [3.0])
        np.testing.assert_array_equal(predict(s, [[1.0], [2.0], [3.0]]), [[2.5], [3.0], [3.5]])
        np.testing.assert_array_equal(predict(s, [[2.0]]), [[3.0]])  # back to the model's own shape
    finally:
        s.unload()
    with pytest.raises(errors.ServingError) as e:
        predict(s, [2.0])
    assert e.value.code == "UNAVAILABLE"


def test_with_signature_defs_in_the_model(testdata):
    # The SignatureDefs stored in the model map x to its tensor "tflite_input".
    s = load(testdata, "saved_model_half_plus_two_tflite_with_sigdef")
    try:
        sig = s.get_signature("serving_default")
        assert sig.inputs["x"].tensor_name == "tflite_input" and sig.method_name == PREDICT
        np.testing.assert_array_equal(predict(s, [2.0]), [3.0])
        np.testing.assert_array_equal(predict(s, [[0.0], [10.0]]), [[2.0], [7.0]])
    finally:
        s.unload()


def example(**features):
    ex = example_pb2.Example()
    for key, value in features.items():
        if isinstance(value, bytes):
            ex.features.feature[key].bytes_list.value.append(value)
        else:
            ex.features.feature[key].float_list.value.append(value)
    return ex.SerializeToString()


def test_parse_example_model(testdata):
    # A model whose only op is TFLite's ParseExample custom op: serialized tf.Examples in, features out,
    # with the defaults stored in the model (x: 0.0, y: "missing") where an example lacks a feature.
    s = load(testdata, "parse_example_tflite")
    try:
        sig = s.get_signature("serving_default")
        assert list(sig.inputs) == ["input"] and sig.inputs["input"].dtype == types_pb2.DT_STRING
        assert list(sig.outputs) == ["ParseExample/ParseExampleV2", "ParseExample/ParseExampleV2:1"]
        batch = np.array([example(x=2.0, y=b"hi"), example(), example(x=-1.5)], dtype=object)
        validate_inputs({"input": batch}, sig)
        out = s.run(sig, {"input": batch})
        np.testing.assert_array_equal(out["ParseExample/ParseExampleV2"], [[2.0], [0.0], [-1.5]])
        assert out["ParseExample/ParseExampleV2:1"].tolist() == [[b"hi"], [b"missing"], [b"missing"]]
        with pytest.raises(errors.ServingError) as e:
            s.run(sig, {"input": np.array([b"not an example"], dtype=object)})
        assert e.value.code == "INVALID_ARGUMENT" and "Could not parse example input" in e.value.message
    finally:
        s.unload()


def test_pool_and_batching_answer_concurrent_requests(testdata):
    xs = [np.full((n, 1), float(n), np.float32) for n in range(1, 9)]
    for kw in ({"num_tflite_pools": 3}, {"num_tflite_pools": 2, "num_tflite_interpreters_per_pool": 4}):
        s = load(testdata, "saved_model_half_plus_two_tflite", **kw)
        try:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                outs = list(pool.map(lambda x: predict(s, x), xs * 10))
            for x, y in zip(xs * 10, outs):
                np.testing.assert_array_equal(y, x * 0.5 + 2.0)
            if kw.get("num_tflite_interpreters_per_pool", 1) > 1:  # TfLiteSession's scheduler merged them
                (batcher,) = s._batchers.values()
                assert batcher.num_rows == sum(len(x) for x in xs) * 10
        finally:
            s.unload()


def test_tflite_only_folder_needs_the_flag(testdata):
    # Without --prefer_tflite_model the SavedModel is loaded, as TF Serving; there is none here.
    with pytest.raises(errors.ServingError) as e:
        load_servable("m", 123, str(testdata / "saved_model_half_plus_two_tflite" / "00000123"))
    assert e.value.code == "NOT_FOUND" and "does not appear to contain a SavedModel bundle" in e.value.message
    # With it, a folder without model.tflite falls back to the SavedModel (as TF Serving).
    s = load(testdata, "saved_model_half_plus_two_cpu")
    try:
        assert s.kind == "session"
        np.testing.assert_array_equal(predict(s, [[2.0]]), [[3.0]])
    finally:
        s.unload()


@pytest.mark.parametrize("prefer_tflite", [False, True])
def test_bad_half_plus_two_fails_to_load_with_a_clear_status(testdata, prefer_tflite):
    # An old SessionBundle export: TF Serving refuses it ("Session Bundle is deprecated and removed.").
    with pytest.raises(errors.ServingError) as e:
        load_servable("bad", 123, str(testdata / "bad_half_plus_two" / "00000123"), prefer_tflite_model=prefer_tflite)
    assert e.value.code == "UNIMPLEMENTED"
    assert e.value.message.startswith("Session Bundle is deprecated and removed.")
    assert "export.meta" in e.value.message and "SavedModel" in e.value.message


def test_broken_tflite_file_fails_to_load(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(errors.ServingError) as e:
        load_servable("m", 1, str(tmp_path / "1"), prefer_tflite_model=True)
    assert e.value.code in ("INVALID_ARGUMENT", "INTERNAL")


def test_tflite_signatures_run_through_signature_runners(tmp_path):
    # A model converted with TFLite's own SignatureDefs: each is a signature, run by its signature runner.
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a")])
        def add(self, a):
            return {"sum": tf.reduce_sum(a, axis=1), "twice": a * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="b")])
        def neg(self, b):
            return {"neg": -b}

    module = Module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.add.get_concrete_function(), module.neg.get_concrete_function()], module)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.tflite").write_bytes(converter.convert())
    s = load_servable("sigs", 1, str(tmp_path / "1"), prefer_tflite_model=True, num_tflite_pools=2)
    try:
        assert sorted(s.signatures) == ["add", "neg"] and sorted(s.signature_def_map()) == ["add", "neg"]
        add = s.get_signature("add")
        assert list(add.inputs) == ["a"] and list(add.outputs) == ["sum", "twice"] and add.inputs["a"].shape == (-1, 2)
        out = s.run(add, {"a": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)})
        np.testing.assert_array_equal(out["sum"], [3.0, 7.0, 11.0])
        np.testing.assert_array_equal(out["twice"], [[2.0, 4.0], [6.0, 8.0], [10.0, 12.0]])
        assert list(s.run(add, {"a": np.ones((1, 2), np.float32)}, output_keys=("sum",))) == ["sum"]
        np.testing.assert_array_equal(s.run(s.get_signature("neg"), {"b": np.array([1.0, -2.0], np.float32)})["neg"],
                                      [-1.0, 2.0])
    finally:
        s.unload()


def test_parse_example_feeding_more_ops(tmp_path):
    # ParseExample (TFLite's custom op, run here by TensorFlow's kernel) followed by ops the interpreter runs.
    import tensorflow.compat.v1 as tf1
    graph = tf1.Graph()
    with tf1.Session(graph=graph) as sess:
        serialized = tf1.placeholder(tf1.string, name="input", shape=[None])
        x = tf1.parse_example(serialized, {"x": tf1.FixedLenFeature([1], tf1.float32, default_value=[0.0])})["x"]
        converter = tf1.lite.TFLiteConverter.from_session(sess, [serialized], [tf1.identity(x * 2.0 + 1.0, name="y")])
        converter.target_spec.supported_ops = [tf1.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = True
        (tmp_path / "1").mkdir()
        (tmp_path / "1" / "model.tflite").write_bytes(converter.convert())
    s = load_servable("pe", 1, str(tmp_path / "1"), prefer_tflite_model=True, num_tflite_pools=1)
    try:
        sig = s.get_signature("serving_default")
        assert list(sig.inputs) == ["input"] and list(sig.outputs) == ["y"]
        out = s.run(sig, {"input": np.array([example(x=2.0), example(), example(x=-1.0)], dtype=object)})
        np.testing.assert_array_equal(out["y"], [[5.0], [1.0], [-1.0]])
        np.testing.assert_array_equal(s.run(sig, {"input": np.array([example(x=0.5)], dtype=object)})["y"], [[2.0]])
    finally:
        s.unload()
