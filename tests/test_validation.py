"""server/validation.py: inputs checked against the signature before the model runs."""
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from server.errors import ServingError
from server.validation import explain_failure, validate_inputs

from .sigs import make_signature

F, I64, S = types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_STRING


def make_sig(inputs, defaults=()):
    return make_signature(inputs, defaults=defaults)


def message(inputs, sig):
    with pytest.raises(ServingError) as e:
        validate_inputs(inputs, sig)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    return e.value.message


def test_matching_inputs_pass():
    sig = make_sig({"x": (F, [-1, 28, 28]), "n": (I64, [-1]), "s": (S, [-1]), "any": (F, None)})
    validate_inputs({"x": np.zeros((3, 28, 28), np.float32), "n": np.arange(3), "s": np.array([b"a"], object),
                     "any": np.zeros((2, 5, 7), np.float32)}, sig)


def test_shapes_are_never_refused_before_the_model_runs():
    # TF Serving feeds tensors without comparing them with the declared shape (predict_util.cc); the model
    # decides. (These requests were refused here before; TF Serving answers them whenever the model can.)
    validate_inputs({"x": np.zeros((2, 28), np.float32)}, make_sig({"x": (F, [-1, 784])}))
    validate_inputs({"x": np.zeros((2, 784), np.float32)}, make_sig({"x": (F, [-1, 28, 28])}))
    validate_inputs({"x": np.float32(1)}, make_sig({"x": (F, [-1])}))
    validate_inputs({"x": np.array([2.0], np.float32)}, make_sig({"x": (F, [])}))  # half_plus_three


def test_failure_explained_with_declared_and_received_shapes():
    sig = make_sig({"x": (F, [-1, 784]), "n": (I64, [-1])})
    err = ServingError("INVALID_ARGUMENT", "Matrix size-incompatible: In[0]: [2,28], In[1]: [784,10]")
    out = explain_failure(err, {"x": np.zeros((2, 28), np.float32), "n": np.arange(2)}, sig)
    assert (out.code, out.message) == ("INVALID_ARGUMENT", (
        "Matrix size-incompatible: In[0]: [2,28], In[1]: [784,10] [Input 'x': Expecting shape [-1,784] but got: "
        "[2,28] (the signature declares float with shape [-1,784]: dimension 1 must be 784, got 28; "
        "-1 means any size)]"))
    rank = explain_failure(err, {"x": np.zeros((2, 784, 1), np.float32), "n": np.arange(2)}, sig).message
    assert "rank 2, got rank 3" in rank
    # every input matches its declared shape: all are named, with what arrived
    out = explain_failure(ServingError("FAILED_PRECONDITION", "boom"),
                          {"x": np.zeros((1, 784), np.float32), "n": np.arange(1)}, sig)
    assert out.code == "FAILED_PRECONDITION" and out.message == (
        "boom [Input 'n': the signature declares int64 with shape [-1]; got int64 with shape [1]; "
        "Input 'x': the signature declares float with shape [-1,784]; got float with shape [1,784]]")


def test_wrong_dtype_keeps_tf_servings_phrase():
    sig = make_sig({"x": (F, [-1, 1])})
    assert message({"x": np.zeros((2, 1), np.int32)}, sig) == (
        "Input 'x': value of type int32 is not of expected type: float (the signature declares float with "
        "shape [-1,1]; got int32 with shape [2,1])")
    assert "is not of expected type: string" in message({"s": np.zeros(2, np.float32)}, make_sig({"s": (S, [-1])}))


def test_missing_and_extra_inputs_use_tf_servings_message():
    sig = make_sig({"a": (F, [-1]), "b": (F, [-1])})
    assert message({"a": np.zeros(1, np.float32)}, sig) == (
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
        "Missing but required: {b}.")
    assert message({"a": np.zeros(1, np.float32), "b": np.zeros(1, np.float32), "c": np.zeros(1)}, sig) == (
        "input size does not match signature: 3!=2 len({a,b,c}) != len({a,b}). Sent extra: {c}. "
        "Missing but required: {}.")
    # as many inputs as declared, one of them wrong: TensorFlow's GetInputValues message
    assert message({"a": np.zeros(1, np.float32), "c": np.zeros(1, np.float32)}, sig) == (
        "Signature input alias: b(feed name: b:0) not found in request and no default value provided. "
        "Inputs expected to be in the request {a,c}, or default input alias set: ")


def test_inputs_with_defaults_may_be_left_out():
    sig = make_sig({"a": (F, [-1]), "b": (F, [-1])}, defaults=["b"])
    validate_inputs({"a": np.zeros(1, np.float32)}, sig)
    assert message({"a": np.zeros(1, np.float32), "c": np.zeros(1, np.float32)}, sig) == (
        "Inputs contains invalid name. Used request inputs: a, request input: a,c")
    three = make_sig({"a": (F, [-1]), "b": (F, [-1]), "c": (F, [-1])}, defaults=["c"])
    assert "Signature input alias: a(feed name: a:0) not found" in message({"b": np.zeros(1, np.float32)}, three)


def test_dtype_checked_against_what_the_model_takes():
    import dataclasses
    sig = make_sig({"s": (F, [])})
    takes_string = dataclasses.replace(sig, inputs={"s": dataclasses.replace(sig.inputs["s"], model_dtype=S)})
    validate_inputs({"s": np.array([b"x"], object)}, takes_string)
    assert message({"s": np.zeros(1, np.float32)}, takes_string) == (
        "Input 's': value of type float is not of expected type: string (the signature declares float with "
        "shape [], though the model's tensor s:0 takes string; got float with shape [1])")
