"""TF Serving's own JSON tests (tensorflow_serving/util/json_tensor_test.cc) against this server's
conversion functions, with TF Serving's expected outputs.

json_tensor_test.cc holds 35 TEST cases; this file expresses the reader-related ones so far (named as
there). Two of them expect what TF Serving 2.18+ does with float inputs beyond 2^24 or FLT_MAX, which
this server still refuses as earlier versions did: they are marked xfail (strict) with the reason.
"""
from __future__ import annotations

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from server.errors import ServingError
from server.rest import predict_request

from .sigs import make_signature


def fill(body: str | bytes, dtype) -> np.ndarray:
    """FillPredictRequestFromJson for one unnamed input "default" of `dtype`."""
    sig = make_signature({"default": (dtype, None)}, name="serving_default")
    doc = predict_request.parse_predict(body)
    predict_request.get_signature_name(doc)  # FillSignature first, as rest/handlers.py calls it
    inputs, columnar = predict_request.decode_predict(doc, sig)
    assert columnar is False  # JsonPredictRequestFormat::kRow
    return inputs["default"]


def test_DeeplyNestedWellFormed():
    body = b'{"instances":[1], "nested":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    assert fill(body, types_pb2.DT_INT32).tolist() == [1]


def test_DeeplyNestedMalformed():
    body = b'{"signature_name":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    with pytest.raises(ServingError) as e:
        fill(body, types_pb2.DT_INT32)
    assert e.value.code == "INVALID_ARGUMENT" and "key must be a string value" in e.value.message


def test_MixedInputForFloatTensor():
    got = fill('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', types_pb2.DT_FLOAT)
    assert got.dtype == np.float32 and got.shape == (7,)
    np.testing.assert_array_equal(got, np.array([1, 2.0, 3, 4, 5.003, 0.007, 0.0], np.float32))


def test_MixedInputForDoubleTensor():
    got = fill('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', types_pb2.DT_DOUBLE)
    assert got.dtype == np.float64 and got.tolist() == [1.0, 2, 3, 4, 0.662, 0, 0.0]


@pytest.mark.xfail(strict=True, raises=ServingError,
                   reason="TF Serving 2.18+ accepts integers beyond 2^24 for DT_FLOAT (b/181409782); "
                          "json_values.is_lossless refuses them as earlier versions did")
def test_FloatTensorWithPrecisionLoss():
    for text in ("1435774380", "1435774380.0"):
        assert fill('{"instances": [%s]}' % text, types_pb2.DT_FLOAT).tolist() == [np.float32(1435774380)]


@pytest.mark.xfail(strict=True, raises=ServingError,
                   reason="TF Serving 2.18+ turns doubles beyond FLT_MAX into +-inf for DT_FLOAT; "
                          "json_values.is_lossless refuses them as earlier versions did")
def test_FloatTensorThatExceedsMaxReturnsInf():
    # absl::Substitute("$0", DBL_MAX) writes 1.79769e+308
    assert fill('{ "instances": [1.79769e+308] }', types_pb2.DT_FLOAT).tolist() == [np.inf]
    assert fill('{ "instances": [-1.79769e+308] }', types_pb2.DT_FLOAT).tolist() == [-np.inf]


def test_FloatTensorThatExceedsMinReturnsZero():
    # absl::Substitute("$0", DBL_MIN) writes 2.22507e-308
    got = fill('{ "instances": [2.22507e-308] }', types_pb2.DT_FLOAT)
    assert got.tolist() == [0.0]
    got = fill('{ "instances": [-2.22507e-308] }', types_pb2.DT_FLOAT)
    assert got.tolist() == [0.0] and np.signbit(got[0])


def test_SingleUnnamedTensorWithSignature():
    doc = predict_request.parse_predict('{"signature_name": "predict_images", "instances": [[1,2]]}')
    assert predict_request.get_signature_name(doc) == "predict_images"
    got = fill('{"signature_name": "predict_images", "instances": [[1,2]]}', types_pb2.DT_INT32)
    assert got.dtype == np.int32 and got.tolist() == [[1, 2]]


def test_TensorFromNonNullTerminatedBuffer():
    jsonstr = b'{"instances": [[1,2],[3,4],[5,6]]}X'
    got = fill(jsonstr[:-1], types_pb2.DT_INT32)
    assert got.shape == (3, 2) and got.tolist() == [[1, 2], [3, 4], [5, 6]]
    # and, rapidjson stopping after the root (kParseStopWhenDoneFlag), with the 'X' as well
    assert fill(jsonstr, types_pb2.DT_INT32).tolist() == [[1, 2], [3, 4], [5, 6]]
