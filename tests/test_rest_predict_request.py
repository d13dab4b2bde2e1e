"""server/rest/predict_request.py: TF Serving's JSON rules for predict requests, with exact messages.

Many cases are TF Serving's own util/json_tensor_test.cc cases, reproduced on numpy arrays.
"""
import math

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from server.errors import ServingError
from server.rest import predict_request
from server.validation import validate_inputs

from .sigs import make_signature

F, D, I32, I64, S, B = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64,
                        types_pb2.DT_STRING, types_pb2.DT_BOOL)


def make_sig(inputs, outputs=None, name="serving_default"):
    """A Signature from a SignatureDef proto; shapes None = unknown rank."""
    return make_signature(inputs, outputs or ["y"], name)


def decode(body, sig):
    doc = predict_request.parse_json(body.encode() if isinstance(body, str) else body)
    return predict_request.decode_predict(doc, sig)


def error(fn, *args):
    with pytest.raises(ServingError) as e:
        fn(*args)
    return e.value


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("body,message", [
    (b"", "JSON Parse error: The document is empty"),
    (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
    (b"abc", "JSON Parse error: Invalid value. at offset: 0"),
    (b"not json", "JSON Parse error: Invalid value. at offset: 1"),  # rapidjson stops after the 'n'
    (b"<html>", "JSON Parse error: Invalid value. at offset: 0"),
    (b'{"a":}', "JSON Parse error: Invalid value. at offset: 5"),
    (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
    (b'{"a": 1,}', "JSON Parse error: Missing a name for object member. at offset: 8"),
    (b'{"a": [1 2]}', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 9"),
    (b'{"a": 1 "b"}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
    (b'{"a": "x', "JSON Parse error: Missing a closing quotation mark in string. at offset: 8"),
    (b'{"a": 1.}', "JSON Parse error: Miss fraction part in number. at offset: 8"),
    (b'{"a": 1e}', "JSON Parse error: Miss exponent in number. at offset: 8"),
    (b'{"a": "\\x"}', "JSON Parse error: Invalid escape character in string. at offset: 7"),
    (b'{"a": nul}', "JSON Parse error: Invalid value. at offset: 9"),
])
def test_parse_errors_are_rapidjsons(body, message):
    e = error(predict_request.parse_json, body)
    assert (e.code, e.message, e.http_status) == ("INVALID_ARGUMENT", message, 400)


def test_top_level_must_be_an_object():
    assert error(predict_request.parse_json, b"[1, 2]").message == "JSON Value: [\n    1,\n    2\n] Is not object"
    assert error(predict_request.parse_json, b"1.5").message == "JSON Value: 1.5 Is not object"


def test_nan_infinity_tokens_and_huge_numbers():
    a = predict_request.parse_json(b'{"a": [NaN, Infinity, -Infinity]}')["a"]
    assert math.isnan(a[0]) and a[1:] == [math.inf, -math.inf]
    b = predict_request.parse_json(b'{"b": [Inf, -NaN, -Inf]}')["b"]
    assert b[0] == math.inf and math.isnan(b[1]) and b[2] == -math.inf
    # rapidjson 1.1.0 (reader.h, ParseNumber: kParseErrorNumberTooBig at the number's start), which
    # TF Serving's ParseJson uses: an exponent or an integer beyond double range is refused.
    for body, offset in ((b'{"b": [Inf, 1e400]}', 12), (b'{"a": [1e400]}', 7), (b'{"a": [-1e400]}', 7),
                         (b'{"a": [' + b"1" * 310 + b"]}", 7)):
        assert error(predict_request.parse_json, body).message == (
            f"JSON Parse error: Number too big to be stored in double. at offset: {offset}")


def test_trailing_content_after_the_root_is_ignored():
    # util/json_tensor.cc ParseJson parses with kParseStopWhenDoneFlag: rapidjson stops after the
    # first complete value, so TF Serving reads these bodies as their first object.
    assert predict_request.parse_json(b'{"a": 1} 2') == {"a": 1}
    assert predict_request.parse_json(b'{"instances":[1.0]} xyz') == {"instances": [1.0]}


def test_first_of_repeated_names_wins_and_a_bom_is_skipped():
    # rapidjson's FindMember finds the first member of a name; EncodedInputStream<UTF8> skips a BOM.
    assert predict_request.parse_json(b'{"instances":[1],"instances":[2]}') == {"instances": [1]}
    assert predict_request.parse_json(b'{"instances":[1],"instances":[2],"x":Inf}')["instances"] == [1]
    assert predict_request.parse_json(b'\xef\xbb\xbf{"instances":[1]}') == {"instances": [1]}


def test_deep_nesting_has_no_limit():
    # TF Serving's json_tensor_test.cc DeeplyNestedWellFormed / DeeplyNestedMalformed.
    depth = 500_000
    doc = predict_request.parse_json(b'{"instances":[1], "nested":' + b"[" * depth + b"]" * depth + b"}")
    assert doc["instances"] == [1]
    e = error(predict_request.parse_json, b'{"instances":[1], "nested":' + b"{" * depth + b"}" * depth + b"}")
    assert e.message == "JSON Parse error: Missing a name for object member. at offset: 28"


def test_invalid_utf8_in_strings_is_kept_byte_for_byte():
    sig = make_sig({"s": (S, [-1])})
    inputs, _ = decode(b'{"instances": ["\xff\xfe", "ok"]}', sig)
    assert inputs["s"].tolist() == [b"\xff\xfe", b"ok"]


def signature_name(body: bytes) -> str:
    return predict_request.get_signature_name(predict_request.parse_json(body))


def test_signature_name():
    assert signature_name(b'{"instances": [1]}') == "serving_default"
    assert signature_name(b'{"signature_name": "", "instances": [1]}') == "serving_default"
    assert signature_name(b'{"signature_name": "predict_images"}') == "predict_images"
    doc = predict_request.parse_json(b'{"signature_name": 5, "instances": [1]}')
    e = error(predict_request.get_signature_name, doc)
    assert e.message == ('JSON Value: {\n    "signature_name": 5,\n    "instances": [\n        1\n    ]\n}'
                         " not formatted correctly. 'signature_name' key must be a string value.")


# ------------------------------------------------------------------ decoding: json_tensor_test cases

def test_single_unnamed_tensor_row():
    inputs, columnar = decode('{"instances": [[1,2],[3,4],[5,6]]}', make_sig({"default": (I32, None)}))
    assert columnar is False
    assert inputs["default"].dtype == np.int32
    assert inputs["default"].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_mixed_input_for_float_and_double():
    f, _ = decode('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', make_sig({"x": (F, None)}))
    assert f["x"].dtype == np.float32
    np.testing.assert_array_equal(f["x"], np.array([1, 2, 3, 4, 5.003, 0.007, 0], np.float32))
    d, _ = decode('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', make_sig({"x": (D, None)}))
    assert d["x"].dtype == np.float64 and d["x"].tolist() == [1, 2, 3, 4, 0.662, 0, 0]


def test_base64_scalars_and_lists():
    sig = make_sig({"default": (S, None)})
    a, _ = decode('{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', sig)
    assert a["default"].dtype == object and a["default"].tolist() == [b"hello", b"world"]
    b, _ = decode('{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}', sig)
    assert b["default"].shape == (2, 1)
    c, _ = decode('{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}', sig)
    assert c["default"].shape == (1, 2, 1) and c["default"].ravel().tolist() == [b"hello", b"world"]


def test_multiple_named_tensors_row():
    sig = make_sig({"int_tensor": (I32, None), "str_tensor": (S, None), "float_tensor": (F, None),
                    "dbl_tensor": (D, None)})
    inputs, _ = decode("""{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"], "float_tensor": [1.0, NaN],
         "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"], "float_tensor": [2.0, Infinity],
         "dbl_tensor": [2.0]}]}""", sig)
    assert inputs["int_tensor"].shape == (2, 3, 2) and inputs["int_tensor"].dtype == np.int32
    assert inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    f = inputs["float_tensor"]
    assert f.dtype == np.float32 and f[0, 0] == 1 and math.isnan(f[0, 1]) and f[1].tolist() == [2, math.inf]
    assert inputs["dbl_tensor"].shape == (2, 1) and math.isnan(inputs["dbl_tensor"][0, 0])


def test_columnar_single_and_named():
    sig = make_sig({"int_tensor": (I32, None)})
    for body in ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}', '{"inputs": [[[1,2],[3,4],[5,6]]]}'):
        inputs, columnar = decode(body, sig)
        assert columnar is True and inputs["int_tensor"].shape == (1, 3, 2)
    sig3 = make_sig({"int_tensor": (I32, None), "str_tensor": (S, None), "bin_tensor": (S, None)})
    inputs, _ = decode('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"], '
                       '"bin_tensor": {"b64": "aGVsbG8="}, "ignored": 1}}', sig3)
    assert inputs["bin_tensor"].shape == () and inputs["bin_tensor"].item() == b"hello"
    assert inputs["str_tensor"].tolist() == [b"foo", b"bar"]
    assert set(inputs) == {"int_tensor", "str_tensor", "bin_tensor"}


P = "Failed to process element: {} of 'instances' list. Error: INVALID_ARGUMENT: "


@pytest.mark.parametrize("body,message", [
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2]]}',
     'JSON Value: {\n    "instances": [\n        [\n            1,\n            2\n        ],\n        [\n'
     '            3,\n            4\n        ],\n        [\n            5,\n            6,\n            7\n'
     '        ]\n    ],\n    "inputs": [\n        [\n            1,\n            2\n        ]\n    ]\n}'
     " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', P.format(2) + "Expecting tensor size: 2 but got: 3"),
    ('{"instances": [[1,2],[3,4],[[5,6]]]}', P.format(2) + "Expecting shape [2] but got: [1,2]"),
    ('{"instances": [1, [1]]}', P.format(1) + "Expecting shape [] but got: [1]"),
    ('{"instances": [[1,2],["a", "b"]]}',
     P.format(1) + 'JSON Value: "a" Type: String is not of expected type: int32'),
    ('{"instances": [1.5]}', P.format(0) + "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ('{"instances": [true]}', P.format(0) + "JSON Value: true Type: True is not of expected type: int32"),
    ('{"instances": [2147483648]}',
     P.format(0) + "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    ('{"instances": [[1, [2]]]}', P.format(0) + "Encountered list at unexpected level: 1 expected < 1"),
    ('{"instances": [[[1], 2]]}',
     P.format(0) + "JSON Value: 2 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ('{"instances": [[[1], [2, 3]]]}',
     P.format(0) + "Encountered list at unexpected size: 2 at level: 1 expected size: 1"),
    ('{"instances": []}', 'JSON Value: {\n    "instances": []\n} No values in \'instances\' array'),
    ('{"instances": 5}', 'JSON Value: {\n    "instances": 5\n} Excepting \'instances\' to be an list/array'),
    ('{"signature_name": "x"}', "Missing 'inputs' or 'instances' key"),
    ('{"instances": [{"default": 1}, [1]]}', "Expecting object but got list at item 1 of input list"),
    ('{"instances": [1, {"default": 1}]}', "Expecting value/list but got object at item 1 of input list"),
    ('{"instances": [{"other": 1}]}', "Failed to process element: 0 key: other of 'instances' list. "
                                      "Error: INVALID_ARGUMENT: JSON object: does not have named input: other"),
])
def test_int_input_errors(body, message):
    e = error(decode, body, make_sig({"default": (I32, None)}))
    assert (e.code, e.message) == ("INVALID_ARGUMENT", message)


def test_numbers_convert_as_getfloat_and_getdouble():
    # TF Serving (since it dropped IsLosslessDecimal) casts: beyond FLT_MAX +-inf, big integers round
    f, d = make_sig({"x": (F, None)}), make_sig({"x": (D, None)})
    assert decode('{"instances": [1.79769e+308, -1e39]}', f)[0]["x"].tolist() == [math.inf, -math.inf]
    assert decode('{"instances": [16777217]}', f)[0]["x"].tolist() == [16777216.0]
    assert decode('{"instances": [9007199254740993]}', d)[0]["x"].tolist() == [9007199254740992.0]
    # the largest exact integers are accepted, and so are values a float rounds
    assert decode('{"instances": [16777215, 0.1]}', f)[0]["x"].tolist() == [16777215.0, np.float32(0.1)]
    assert decode('{"inputs": [1e7, 1, 2.5]}', f)[0]["x"].tolist() == [1e7, 1, 2.5]


def test_strings_and_bools_for_number_inputs():
    f = make_sig({"x": (F, [-1, 2])})
    assert error(decode, '{"instances": [["a", "b"]]}', f).message.endswith(
        'JSON Value: "a" Type: String is not of expected type: float')
    e = error(decode, '{"instances": [[1.0, true]]}', f)
    assert e.message.endswith("JSON Value: true Type: True is not of expected type: float")
    e = error(decode, '{"inputs": [[1.0, null]]}', f)
    assert e.message == "JSON Value: null Type: Null is not of expected type: float"
    b = make_sig({"b": (B, None)})
    assert decode('{"inputs": [true, false]}', b)[0]["b"].tolist() == [True, False]
    assert error(decode, '{"inputs": [true, 1]}', b).message == (
        "JSON Value: 1 Type: Number is not of expected type: bool")


def test_base64_errors():
    s = make_sig({"s": (S, None)})
    assert error(decode, '{"instances": [{"b64": "!!!"}]}', s).message == P.format(0) + "Unable to base64 decode"
    assert error(decode, '{"inputs": {"b64": "a"}}', s).message == "Unable to base64 decode"
    assert error(decode, '{"inputs": [{"b64": "aGVsbG8=", "x": 1}]}', s).message == (
        'JSON Value: {\n    "b64": "aGVsbG8=",\n    "x": 1\n} not formatted correctly for base64 data')
    assert decode('{"inputs": [{"b64": "aGVsbG8"}]}', s)[0]["s"].tolist() == [b"hello"]  # padding optional


def test_multiple_named_tensor_errors():
    sig = make_sig({"int_tensor": (I32, None), "str_tensor": (S, None)})
    msg = error(decode, """{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},
        {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}""", sig).message
    assert msg == ("Failed to process element: 1 key: int_tensor of 'instances' list. Error: "
                   "INVALID_ARGUMENT: Expecting shape [3,2] but got: [1,3,2]")
    msg = error(decode, """{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["a"]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["b"]}]}""", sig).message
    assert msg.endswith("Expecting tensor size: 8 but got: 6")
    assert "Expecting object but got list" in error(
        decode, '{"instances": [{"int_tensor": [1], "str_tensor": ["a"]}, [1, 20, 30]]}', sig).message
    msg = error(decode, '{"instances": [{"int_tensor": [1]}]}', sig).message
    assert msg == ("Failed to process element: 0 of 'instances' list. JSON object: {\n    \"int_tensor\": [\n"
                   "        1\n    ]\n} keys must be equal to: int_tensor,str_tensor")
    assert error(decode, '{"instances": [[1]]}', sig).message == (
        "instances is a plain list, but expecting list of objects as multiple input tensors required as "
        "per tensorinfo_map")
    assert error(decode, '{"inputs": [1]}', sig).message == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
        "tensorinfo_map")
    assert error(decode, '{"inputs": {"int_tensor": [1]}}', sig).message == (
        "Missing named input: str_tensor in 'inputs' object.")
    one = make_sig({"str_tensor": (S, None)})
    assert "Expecting value/list but got object" in error(
        decode, '{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}', one).message


def test_unsupported_input_type_is_unimplemented():
    sig = make_sig({"c": (types_pb2.DT_COMPLEX64, None)})
    e = error(decode, '{"inputs": [1.0]}', sig)
    assert (e.code, e.http_status, e.message) == (
        "UNIMPLEMENTED", 501, "Conversion of JSON Value: 1.0 to type: complex64")


def test_validation_runs_after_decoding():
    # The codec only converts; the core (dataplane.py) then checks the arrays against the signature: their
    # names and dtypes. A shape the signature does not declare is fed to the model as TF Serving feeds it
    # (this request was refused here before).
    sig = make_sig({"x": (F, [-1, 2])})
    inputs, _ = decode('{"instances": [[1.0, 2.0, 3.0]]}', sig)
    assert inputs["x"].shape == (1, 3)
    validate_inputs(inputs, sig)
    e = error(validate_inputs, {"x": inputs["x"], "y": inputs["x"]}, sig)
    assert "input size does not match signature: 2!=1" in e.message


def test_fast_and_exact_paths_agree():
    sig = make_sig({"x": (F, [-1, 3])})
    fast, _ = decode('{"instances": [[1, 2.5, 3], [4, 5, 6e-3]]}', sig)
    # NaN forces the element-by-element reader for the same values
    exact, _ = decode('{"instances": [[1, 2.5, 3], [4, 5, 6e-3]], "x": NaN}', sig)
    np.testing.assert_array_equal(fast["x"], exact["x"])
    assert fast["x"].dtype == exact["x"].dtype == np.float32
