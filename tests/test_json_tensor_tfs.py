"""TF Serving's own JSON tests (tensorflow_serving/util/json_tensor_test.cc) against this server's
conversion functions, with TF Serving's inputs and expected outputs.

json_tensor_test.cc holds 35 TEST cases and 3 TYPED_TEST cases (each run for ClassificationRequest and
RegressionRequest): 41 runs. Every one is expressed here under its name there; a typed case is one
test parametrised over classify/regress. What TF Serving checks with EqualsProto is checked on the
arrays (dtype, shape, values) or Example protos this server makes; CompareJson on the parsed JSON
(numbers by value); CompareJsonAllValuesAsStrings on the number tokens as text.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from server.errors import ServingError
from server.rest import app, predict_request, predict_response, tf_example_json

from .sigs import make_signature

I32, F32, F64, STR = types_pb2.DT_INT32, types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_STRING


def fill_request(body: str | bytes, infomap: dict[str, int]) -> tuple[dict[str, np.ndarray], bool, str]:
    """FillPredictRequestFromJson: (inputs, columnar?, signature name) for a signature whose inputs are
    `infomap` (name -> dtype, shape unknown, as getmap() gives TF Serving's)."""
    sig = make_signature({k: (dt, None) for k, dt in infomap.items()}, name="serving_default")
    doc = predict_request.parse_predict(body)
    name = predict_request.get_signature_name(doc)  # FillSignature first, as rest/handlers.py calls it
    inputs, columnar = predict_request.decode_predict(doc, sig)
    return inputs, columnar, name


def fill(body: str | bytes, dtype) -> np.ndarray:
    """One unnamed input "default" of `dtype`, row format."""
    inputs, columnar, _ = fill_request(body, {"default": dtype})
    assert columnar is False  # JsonPredictRequestFormat::kRow
    assert list(inputs) == ["default"]
    return inputs["default"]


def fill_error(body: str | bytes, infomap: dict[str, int]) -> str:
    with pytest.raises(ServingError) as e:
        fill_request(body, infomap)
    assert e.value.code == "INVALID_ARGUMENT"  # absl::IsInvalidArgument
    return e.value.message


def same(got: np.ndarray, dtype, shape: tuple, values: list) -> None:
    """EqualsProto on a TensorProto: dtype, tensor_shape and the flat *_val list (NaN equals NaN)."""
    assert got.dtype == dtype and got.shape == shape
    flat = got.reshape(-1).tolist()
    assert len(flat) == len(values)
    for a, b in zip(flat, values):
        assert (a != a and b != b) or (a == b and type(a) is type(b)), (flat, values)


# ---------------------------------------------------------------- FillPredictRequestFromJson

def test_SingleUnnamedTensor():
    got = fill('{\n  "instances": [[1,2],[3,4],[5,6]]\n}', I32)
    same(got, np.int32, (3, 2), [1, 2, 3, 4, 5, 6])


def test_DeeplyNestedWellFormed():
    body = b'{"instances":[1], "nested":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    inputs, _, _ = fill_request(body, {"default": I32})
    assert len(inputs) == 1 and inputs["default"].tolist() == [1]


def test_DeeplyNestedMalformed():
    body = b'{"signature_name":' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    assert "key must be a string value" in fill_error(body, {"default": I32})


def test_MixedInputForFloatTensor():
    got = fill('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', F32)
    same(got, np.float32, (7,), [float(np.float32(x)) for x in (1, 2.0, 3, 4, 5.003, 0.007, 0.0)])


def test_MixedInputForDoubleTensor():
    got = fill('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', F64)
    same(got, np.float64, (7,), [1.0, 2.0, 3.0, 4.0, 0.662, 0.0, 0.0])


def test_FloatTensorWithPrecisionLoss():
    # float_val: 1435774380 (the float nearest: 1435774336), with and without a decimal point
    for text in ("1435774380", "1435774380.0"):
        same(fill('{"instances": [%s]}' % text, F32), np.float32, (1,), [float(np.float32(1435774380))])


def test_FloatTensorThatExceedsMaxReturnsInf():
    # absl::Substitute("$0", DBL_MAX) writes 1.79769e+308
    same(fill('{ "instances": [1.79769e+308] }', F32), np.float32, (1,), [math.inf])
    same(fill('{ "instances": [-1.79769e+308] }', F32), np.float32, (1,), [-math.inf])


def test_FloatTensorThatExceedsMinReturnsZero():
    # absl::Substitute("$0", DBL_MIN) writes 2.22507e-308
    same(fill('{ "instances": [2.22507e-308] }', F32), np.float32, (1,), [0.0])
    got = fill('{ "instances": [-2.22507e-308] }', F32)
    same(got, np.float32, (1,), [0.0])
    assert np.signbit(got[0])  # float_val: -0


def test_SingleUnnamedTensorWithSignature():
    inputs, columnar, name = fill_request('{"signature_name": "predict_images", "instances": [[1,2]]}',
                                          {"default": I32})
    assert name == "predict_images" and columnar is False and len(inputs) == 1
    same(inputs["default"], np.int32, (1, 2), [1, 2])


def test_TensorFromNonNullTerminatedBuffer():
    jsonstr = b'{"instances": [[1,2],[3,4],[5,6]]}X'
    same(fill(jsonstr[:-1], I32), np.int32, (3, 2), [1, 2, 3, 4, 5, 6])
    # and, rapidjson stopping after the root (kParseStopWhenDoneFlag), with the 'X' as well
    same(fill(jsonstr, I32), np.int32, (3, 2), [1, 2, 3, 4, 5, 6])


def test_SingleUnnamedTensorBase64Scalars():
    got = fill('{"instances": [ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]}', STR)
    assert got.shape == (2,) and got.tolist() == [b"hello", b"world"]


def test_SingleUnnamedTensorBase64Lists():
    got = fill('{"instances": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}', STR)
    assert got.shape == (2, 1) and got.reshape(-1).tolist() == [b"hello", b"world"]


def test_SingleNamedTensorBase64():
    got = fill('{"instances": [{"default": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}]}', STR)
    assert got.shape == (1, 2, 1) and got.reshape(-1).tolist() == [b"hello", b"world"]


def test_MultipleNamedTensor():
    inputs, columnar, _ = fill_request("""{
      "instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}
      ]}""", {"int_tensor": I32, "str_tensor": STR, "float_tensor": F32, "dbl_tensor": F64})
    assert len(inputs) == 4 and columnar is False
    same(inputs["int_tensor"], np.int32, (2, 3, 2), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2])
    assert inputs["str_tensor"].shape == (2, 2)
    assert inputs["str_tensor"].reshape(-1).tolist() == [b"foo", b"bar", b"baz", b"bat"]
    same(inputs["float_tensor"], np.float32, (2, 2), [1.0, math.nan, 2.0, math.inf])
    same(inputs["dbl_tensor"], np.float64, (2, 1), [math.nan, 2.0])


def test_SingleUnnamedTensorColumnarFormat():
    for body in ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
                 '{"inputs": [[[1,2],[3,4],[5,6]]]}'):  # skip explicitly specifying named input
        inputs, columnar, _ = fill_request(body, {"int_tensor": I32})
        assert columnar is True and len(inputs) == 1  # JsonPredictRequestFormat::kColumnar
        same(inputs["int_tensor"], np.int32, (1, 3, 2), [1, 2, 3, 4, 5, 6])


def test_MultipleNamedTensorColumnarFormat():
    inputs, columnar, _ = fill_request(
        '{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],'
        ' "bin_tensor": { "b64" : "aGVsbG8=" }}}',
        {"int_tensor": I32, "str_tensor": STR, "bin_tensor": STR})
    assert columnar is True and len(inputs) == 3
    same(inputs["int_tensor"], np.int32, (1, 3, 2), [1, 2, 3, 4, 5, 6])
    assert inputs["str_tensor"].shape == (2,) and inputs["str_tensor"].tolist() == [b"foo", b"bar"]
    assert inputs["bin_tensor"].shape == () and inputs["bin_tensor"].tolist() == b"hello"


@pytest.mark.parametrize("body, expected", [
    ("", "document is empty"),
    ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', "must be a string value"),
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', "Not formatted correctly"),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),
    ('{"instances": [[1,2],[3,4],[[5,6]]]}', "Expecting shape"),
    ('{"instances": [1, [1]]}', "Expecting shape"),
    ('{"instances": [[1,2],["a", "b"]]}', "not of expected type"),
])
def test_SingleUnnamedTensorErrors(body, expected):
    assert expected in fill_error(body, {"default": I32})


_TWO = {"int_tensor": I32, "str_tensor": STR}


@pytest.mark.parametrize("body, infomap, expected", [
    # different shapes across int_tensor instances
    ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
     ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}', _TWO, "Expecting shape"),
    # different size/length across int_tensor instances
    ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]},'
     ' {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]}', _TWO, "Expecting tensor size"),
    # first element an object, the rest must be objects too
    ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]}, [1, 20, 30],'
     ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}', _TWO,
     "Expecting object but got list"),
    # first element a list, the rest must be lists too
    ('{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}', {"str_tensor": STR},
     "Expecting value/list but got object"),
])
def test_MultipleNamedTensorErrors(body, infomap, expected):
    assert expected in fill_error(body, infomap)


# ---------------------------------------------------------------- MakeJsonFromTensors

def compare_json(got: bytes, want: str) -> None:
    """CompareJson: the same JSON document, numbers compared by value (rapidjson's operator==)."""
    assert json.loads(got) == json.loads(want), got


def compare_json_all_values_as_strings(got: bytes, want: str) -> None:
    """CompareJsonAllValuesAsStrings: numbers (NaN, Infinity included) compared as their text."""
    def load(text):
        return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    assert load(got) == load(want), got


def make_json(tensors: dict[str, np.ndarray], columnar: bool) -> bytes:
    return predict_response.encode_predict(tensors, columnar)


def make_json_error(tensors: dict[str, np.ndarray]) -> str:
    with pytest.raises(ServingError) as e:
        make_json(tensors, False)
    assert e.value.code == "INVALID_ARGUMENT"
    return e.value.message


_INT_2x3x2 = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2], np.int32).reshape(2, 3, 2)
_BYTES_2x2 = np.array([b"hello", b"world", b"tf", b"serving"], dtype=object).reshape(2, 2)


def test_FromJsonSingleTensor():
    tensors = {"int_tensor": _INT_2x3x2}
    compare_json(make_json(tensors, False), '{"predictions": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]}')
    compare_json(make_json(tensors, True), '{"outputs": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]}')


def test_FromJsonSingleScalarTensor():
    tensors = {"int_tensor": np.array([1, 2, 3, 4, 5], np.int32)}
    compare_json(make_json(tensors, False), '{ "predictions": [1, 2, 3, 4, 5] }')
    compare_json(make_json(tensors, True), '{ "outputs": [1, 2, 3, 4, 5] }')


def test_FromJsonSingleBytesTensor():
    compare_json(make_json({"str_tensor_bytes": _BYTES_2x2}, False), """{"predictions": [
      [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
      [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]}""")


def test_FromJsonSingleFloatTensorSixDigitPrecision():
    tensors = {"float_tensor": np.array([9000000, 999999, 0.50000, .0003, .00003, 555557.5],
                                        np.float32).reshape(2, 3)}
    compare_json_all_values_as_strings(make_json(tensors, False), """{"predictions": [
      [9e+06, 999999.0, 0.5],
      [0.0003, 3e-05, 555557.5]]}""")


def test_FromJsonSingleFloatTensorNonFinite():
    tensors = {"float_tensor": np.array([math.nan, math.inf, 3, -math.inf], np.float32).reshape(2, 2)}
    compare_json_all_values_as_strings(make_json(tensors, False), """{"predictions": [
      [NaN, Infinity],
      [3.0, -Infinity]]}""")


def test_FromJsonSingleTensorErrors():
    assert "empty tensor map" in make_json_error({})
    assert "tensor type: complex64" in make_json_error({"tensor": np.array([1.0, 2.0], np.complex64)})
    # dtype: DT_INT32 int_val: 1 and no tensor_shape: a scalar
    assert "no shape information" in make_json_error({"tensor": np.array(1, np.int32)})


def test_FromJsonMultipleNamedTensors():
    tensors = {
        "int_tensor": _INT_2x3x2,
        "str_tensor": np.array([b"foo", b"bar", b"baz", b"bat"], dtype=object).reshape(2, 2),
        "float_tensor": np.array([1.0, 2.0], np.float32).reshape(2, 1),
        "double_scalar_tensor": np.array([8.0, 9.0], np.float64),
        "str_tensor_bytes": _BYTES_2x2,
    }
    compare_json(make_json(tensors, False), """{
    "predictions": [
      {
        "double_scalar_tensor": 8.0,
        "float_tensor": [1.0],
        "int_tensor": [[1, 2], [3, 4], [5, 6]],
        "str_tensor": ["foo", "bar"],
        "str_tensor_bytes": [ {"b64": "aGVsbG8="}, {"b64": "d29ybGQ="} ]
      },
      {
        "double_scalar_tensor": 9.0,
        "float_tensor": [2.0],
        "int_tensor": [[7, 8], [9, 0], [1, 2]],
        "str_tensor": ["baz", "bat"],
        "str_tensor_bytes": [ {"b64": "dGY="}, {"b64": "c2VydmluZw=="} ]
      }
    ]}""")
    compare_json(make_json(tensors, True), """{
    "outputs": {
      "double_scalar_tensor": [8.0, 9.0],
      "float_tensor": [[1.0], [2.0]],
      "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
      "str_tensor": [["foo", "bar"], ["baz", "bat"]],
      "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                           [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    }}""")


def test_FromJsonMultipleNamedTensorsErrors():
    tensors = {"int_tensor": np.arange(1, 7, dtype=np.int32).reshape(2, 3),
               "str_tensor": np.array([b"foo", b"bar", b"baz"], dtype=object).reshape(1, 3)}
    assert "inconsistent batch size" in make_json_error(tensors)


def test_FromJsonSingleZeroBatchTensor():
    compare_json(make_json({"int_tensor": np.zeros((0, 2), np.int32)}, False), '{ "predictions": [] }')


def test_FromJsonMultipleZeroBatchTensors():
    tensors = {"str_tensor": np.zeros((0, 1, 2), dtype=object), "float_tensor": np.zeros((0, 3, 4), np.float32)}
    compare_json(make_json(tensors, False), '{ "predictions": [] }')


def test_FromJsonMultipleZeroBatchTensorsErrors():
    tensors = {"int_tensor": np.zeros((0, 2), np.int32),
               "str_tensor": np.array([b"foo", b"bar"], dtype=object).reshape(1, 2)}
    assert "inconsistent batch size" in make_json_error(tensors)


# ---------------------------------------------------------------- Fill{Classification,Regression}RequestFromJson

def fill_examples(body: str) -> tuple[str, list[example_pb2.Example], example_pb2.Example | None]:
    """(signature name, examples, context) as the classify and regress handlers read a body (both
    methods read it with the same code here, as TF Serving's two Fill*RequestFromJson do)."""
    doc = predict_request.parse_json(body.encode())
    name = predict_request.get_signature_name(doc)
    serialized, context = tf_example_json.decode_examples(doc).parts()
    return (name, [example_pb2.Example.FromString(s) for s in serialized],
            None if context is None else example_pb2.Example.FromString(context))


def example(text: str) -> example_pb2.Example:
    return text_format.Parse(text, example_pb2.Example())


def same_examples(got: list[example_pb2.Example], want: list[example_pb2.Example]) -> None:
    """MessageDifferencer with float comparison APPROXIMATE and NaN equal to NaN: features by key."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        gf, wf = g.features.feature, w.features.feature
        assert sorted(gf) == sorted(wf)
        for k in wf:
            assert gf[k].WhichOneof("kind") == wf[k].WhichOneof("kind"), k
            kind = wf[k].WhichOneof("kind")
            a, b = list(getattr(gf[k], kind).value), list(getattr(wf[k], kind).value)
            if kind == "float_list":
                assert len(a) == len(b) and all((x != x and y != y) or x == pytest.approx(y) for x, y in zip(a, b))
            else:
                assert a == b, k


_METHODS = ["ClassificationRequest", "RegressionRequest"]  # TYPED_TEST_CASE's two request types


@pytest.mark.parametrize("request_type", _METHODS)
def test_ClassifyRegressRequestTest_RequestNoContext(request_type):
    name, got, context = fill_examples("""{
      "examples": [
        {"names": [ "foo", "bar" ], "ratings": [ 8.0, 9.0 ], "age": 20},
        {"names": [ "baz" ], "ratings": 6.0}
      ]}""")
    # no model_spec.signature_name: the empty name, which both servers resolve to the default signature
    # (TF Serving in the core, this server as it reads the body)
    assert name == "serving_default" and context is None  # input { example_list { ... } }
    same_examples(got, [
        example('features { feature { key: "names" value { bytes_list { value: "foo" value: "bar" } } }'
                ' feature { key: "ratings" value { float_list { value: 8.0 value: 9.0 } } }'
                ' feature { key: "age" value { int64_list { value: 20 } } } }'),
        example('features { feature { key: "names" value { bytes_list { value: "baz" } } }'
                ' feature { key: "ratings" value { float_list { value: 6.0 } } } }'),
    ])


@pytest.mark.parametrize("request_type", _METHODS)
def test_ClassifyRegressRequestTest_RequestWithContextAndSignature(request_type):
    name, got, context = fill_examples("""{
      "signature_name": "custom_signture",
      "context": {"query": "pizza", "location": [ "sfo" ]},
      "examples": [
        {"names": [ "foo", "bar" ], "ratings": [ 8.0, 9.0, NaN, Infinity ], "age": 20},
        {"names": [ "baz", { "b64": "aGVsbG8=" } ], "ratings": 6.0, "intboolmix": [ 1, true, false ]},
        {"names": "bar", "ratings": -Infinity}
      ]}""")
    assert name == "custom_signture"  # model_spec { signature_name: "custom_signture" }
    assert context is not None  # input { example_list_with_context { context ... } }
    same_examples([context], [
        example('features { feature { key: "query" value { bytes_list { value: "pizza" } } }'
                ' feature { key: "location" value { bytes_list { value: "sfo" } } } }')])
    same_examples(got, [
        example('features { feature { key: "names" value { bytes_list { value: "foo" value: "bar" } } }'
                ' feature { key: "ratings" value { float_list { value: 8.0 value: 9.0 value: nan value: inf } } }'
                ' feature { key: "age" value { int64_list { value: 20 } } } }'),
        example('features { feature { key: "names" value { bytes_list { value: "baz" value: "hello" } } }'
                ' feature { key: "ratings" value { float_list { value: 6.0 } } }'
                ' feature { key: "intboolmix" value { int64_list { value: 1 value: 1 value: 0 } } } }'),
        example('features { feature { key: "names" value { bytes_list { value: "bar" } } }'
                ' feature { key: "ratings" value { float_list { value: -inf } } } }'),
    ])


@pytest.mark.parametrize("request_type", _METHODS)
@pytest.mark.parametrize("body, expected", [
    ('{"signature_name": [ "hello" ], "examples": [ { "names": [ "foo", "bar" ] } ]}',
     "'signature_name' key must be a string"),
    ('{"context": [ { "names": [ "foo", "bar" ] } ]}', "Example must be JSON object"),
    ('{"examples": { "names": [ "foo", "bar" ] }}', "list/array"),
    ('{"examples": [ [ { "names": [ "foo", "bar" ] } ] ]}', "Example must be JSON object"),
    ('{"examples": [ { "names": [ 10, null ] } ]}', "names has element with unexpected JSON type: Null"),
    ('{"examples": [ { "names": [ 10, 10.0 ] } ]}', "feature: names expecting type: int64"),
    ('{"examples": [ { "names": [ 10, { "test": 10 } ] } ]}',
     "names has element with unexpected JSON type: Object"),
    ('{"examples": [ { "names": [ [10], 20 ] } ]}', "names has element with unexpected JSON type: Array"),
    ('{"examples": [ { "names": [ 20, 18446744073709551603 ] } ]}', "Only int64_t is supported"),
])
def test_ClassifyRegressRequestTest_JsonErrors(request_type, body, expected):
    with pytest.raises(ServingError) as e:
        fill_examples(body)
    assert e.value.code == "INVALID_ARGUMENT" and expected in e.value.message


# ---------------------------------------------------------------- MakeJsonFrom{Classification,Regression}Result

def test_ClassifyRegressnResultTest_JsonFromClassificationResult():
    outputs = {"classes": np.array([[b"car", b"bike", b"bus"]] * 2, dtype=object),
               "scores": np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], np.float32)}
    compare_json(tf_example_json.encode_classify(outputs), """{
    "results": [
      [ ["car", 0.2], ["bike", 0.7], ["bus", 0.1] ],
      [ ["car", 0.7], ["bike", 0.1], ["bus", 0.2] ]
    ]}""")


def test_ClassifyRegressnResultTest_JsonFromRegressionResult():
    outputs = {"outputs": np.array([0.2, 0.9, 1.0], np.float32)}
    compare_json(tf_example_json.encode_regress(outputs), '{ "results": [ 0.2, 0.9, 1.0 ] }')


def test_ClassifyRegressnResultTest_JsonFromRegressionResultWithNonFinite():
    outputs = {"outputs": np.array([0.2, math.inf, 1.0, -math.inf, math.nan], np.float32)}
    compare_json_all_values_as_strings(tf_example_json.encode_regress(outputs),
                                       '{ "results": [ 0.2, Infinity, 1.0, -Infinity, NaN ] }')


def test_ClassifyRegressnResultTest_JsonFromResultErrors():
    with pytest.raises(ServingError, match="empty ClassificationResults") as e:
        tf_example_json.encode_classify({"scores": np.zeros((0, 3), np.float32)})
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ServingError, match="empty RegressionResults") as e:
        tf_example_json.encode_regress({"outputs": np.zeros((0,), np.float32)})
    assert e.value.code == "INVALID_ARGUMENT"


# ---------------------------------------------------------------- MakeJsonFromStatus

class _Answers:
    """A RestAPI stand-in: predict answers `body`, or raises `error`."""

    def __init__(self, body: bytes = b"", error: ServingError | None = None):
        self.body, self.error = body, error

    def predict(self, name, version, label, body):
        if self.error is not None:
            raise self.error
        return self.body


def test_MakeJsonFromTensors_StatusOK():
    # An OK status adds no error text: the answer is the handler's output, nothing more.
    status, body, _ = app.Responder(_Answers(b'{"predictions": []}'))("POST", "/v1/models/m:predict", lambda: b"{}")
    assert status == 200 and body == b'{"predictions": []}'


def test_MakeJsonFromTensors_StatusError():
    for message in ('Bad key: "key"', "Bad key: 'key'"):
        compare_json(app.error_body(message), json.dumps({"error": message}))
        error = ServingError("INVALID_ARGUMENT", message)
        status, body, _ = app.Responder(_Answers(error=error))("POST", "/v1/models/m:predict", lambda: b"{}")
        assert status == 400
        compare_json(body, json.dumps({"error": message}))
