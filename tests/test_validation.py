"""server/validation.py: inputs checked against the signature before the model runs."""
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from .sigs import make_signature
from server.errors import ServingError
from server.validation import validate_inputs

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


def test_wrong_dimension_names_input_expected_and_got():
    sig = make_sig({"x": (F, [-1, 784])})
    assert message({"x": np.zeros((2, 28), np.float32)}, sig) == (
        "Input 'x': Expecting shape [-1,784] but got: [2,28] (the signature declares float with shape "
        "[-1,784]: dimension 1 must be 784, got 28; -1 means any size)")


def test_wrong_rank():
    sig = make_sig({"x": (F, [-1, 28, 28])})
    assert message({"x": np.zeros((2, 784), np.float32)}, sig) == (
        "Input 'x': Expecting shape [-1,28,28] but got: [2,784] (the signature declares float with shape "
        "[-1,28,28]: rank 3, got rank 2)")
    assert "rank 1, got rank 0" in message({"x": np.float32(1)}, make_sig({"x": (F, [-1])}))


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


def test_inputs_with_defaults_may_be_left_out():
    sig = make_sig({"a": (F, [-1]), "b": (F, [-1])}, defaults=["b"])
    validate_inputs({"a": np.zeros(1, np.float32)}, sig)
