"""server/rest/predict_response.py and the number writer (rest/json_writer.py): TF Serving's answers,
byte for byte. Many cases are TF Serving's own util/json_tensor_test.cc cases, on numpy arrays."""
import math

import numpy as np
import pytest

from server.errors import ServingError
from server.rest import json_writer, predict_response


def error(fn, *args):
    with pytest.raises(ServingError) as e:
        fn(*args)
    return e.value


# ------------------------------------------------------------------ encoding

def test_fixture_answer_row_format_bytes():
    out = predict_response.encode_predict({"y": np.array([[2.5, 3.0], [3.5, 4.0]], np.float32)}, columnar=False)
    assert out == b'{\n    "predictions": [[2.5, 3.0], [3.5, 4.0]\n    ]\n}'
    out = predict_response.encode_predict({"y": np.array([2.5, 3.0, 4.5], np.float32)}, columnar=False)
    assert out == b'{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'


def test_columnar_layout():
    out = predict_response.encode_predict({"y": np.array([[1, 2], [3, 4]], np.int32)}, columnar=True)
    assert out == (b'{\n    "outputs": [\n        [\n            1,\n            2\n        ],\n'
                   b'        [\n            3,\n            4\n        ]\n    ]\n}')
    out = predict_response.encode_predict({"b": np.array([True, False]), "a": np.array(3.0, np.float64)}, columnar=True)
    assert out == (b'{\n    "outputs": {\n        "a": 3.0,\n        "b": [\n            true,\n'
                   b'            false\n        ]\n    }\n}')


def test_several_outputs_row_layout_sorted_keys():
    out = predict_response.encode_predict({"z": np.array([1, 2], np.int64), "a": np.array([[1.5], [2.0]], np.float32)},
                               columnar=False)
    assert out == (b'{\n    "predictions": [\n        {\n            "a": [1.5],\n            "z": 1\n'
                   b'        },\n        {\n            "a": [2.0],\n            "z": 2\n        }\n    ]\n}')


def test_bytes_outputs_as_b64_and_strings_as_text():
    t = np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object)
    out = predict_response.encode_predict({"str_tensor_bytes": t}, columnar=False)
    assert out == (b'{\n    "predictions": [[{\n                "b64": "aGVsbG8="\n            }, {\n'
                   b'                "b64": "d29ybGQ="\n            }], [{\n                "b64": "dGY="\n'
                   b'            }, {\n                "b64": "c2VydmluZw=="\n            }]\n    ]\n}')
    out = predict_response.encode_predict({"s": np.array([b'a"b\\c\n\x01', "caf\u00e9".encode()], dtype=object)}, False)
    assert out == b'{\n    "predictions": ["a\\"b\\\\c\\n\\u0001", "caf\xc3\xa9"\n    ]\n}'
    # bytes that are not UTF-8 are written raw, as rapidjson writes them
    assert predict_response.encode_predict({"s": np.array([b"\xff"], dtype=object)}, False) == (
        b'{\n    "predictions": ["\xff"\n    ]\n}')


@pytest.mark.parametrize("value,text", [
    (9000000, "9e+06"), (999999, "999999.0"), (0.5, "0.5"), (0.0003, "0.0003"), (0.00003, "3e-05"),
    (555557.5, "555557.5"), (3, "3.0"), (0.2, "0.2"), (1 / 3, "0.333333343"), (16777216, "16777216.0"),
    (-0.0, "-0.0"), (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"),
])
def test_float32_formatting(value, text):
    out = predict_response.encode_predict({"y": np.array([value], np.float32)}, columnar=False)
    assert out == b'{\n    "predictions": [' + text.encode() + b"\n    ]\n}"


def test_float64_formatting():
    vals = np.array([0.1, 1 / 3, 2.0, 1e300], np.float64)
    out = predict_response.encode_predict({"y": vals}, columnar=False)
    assert out == b'{\n    "predictions": [0.1, 0.33333333333333331, 2.0, 1e+300\n    ]\n}'


def test_encode_errors_and_empty_batch():
    assert error(predict_response.encode_predict, {}, False).message == "Cannot convert empty tensor map to JSON"
    e = error(predict_response.encode_predict, {"t": np.array(1)}, False)
    assert e.message == "Tensor name: t has no shape information "
    e = error(predict_response.encode_predict, {"a": np.zeros((2, 3)), "b": np.zeros((1, 3))}, False)
    assert e.message == "Tensor name: b has inconsistent batch size: 1 expecting: 2"
    assert predict_response.encode_predict({"a": np.zeros((0, 2), np.int32)}, False) == b'{\n    "predictions": []\n}'
    assert predict_response.encode_predict({"a": np.zeros((0, 2)), "b": np.zeros((0, 3, 4))}, False) == (
        b'{\n    "predictions": []\n}')
    e = error(predict_response.encode_predict, {"c": np.array([1 + 2j], np.complex64)}, True)
    assert e.message == "Failed to write JSON value for tensor type: complex64"


def test_json_tensor_test_multiple_named_outputs_parse_back():
    import json
    tensors = {
        "int_tensor": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32),
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
        "float_tensor": np.array([[1.0], [2.0]], np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0]),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object),
    }
    rows = json.loads(predict_response.encode_predict(tensors, False))
    assert rows == {"predictions": [
        {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "int_tensor": [[1, 2], [3, 4], [5, 6]],
         "str_tensor": ["foo", "bar"], "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]},
        {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "int_tensor": [[7, 8], [9, 0], [1, 2]],
         "str_tensor": ["baz", "bat"], "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]}]}
    cols = json.loads(predict_response.encode_predict(tensors, True))
    assert cols["outputs"]["str_tensor_bytes"] == [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                                                   [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    assert cols["outputs"]["double_scalar_tensor"] == [8.0, 9.0]


def test_round_trip_random_float32_reads_back_exactly():
    a = np.random.default_rng(0).standard_normal((50, 10)).astype(np.float32) * 1e3
    import json
    back = np.array(json.loads(predict_response.encode_predict({"y": a}, False))["predictions"], np.float32)
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("single", [True, False])
def test_short_and_long_float_lists_are_written_alike(single):
    # Short outputs are written value by value, long ones vectorised: the texts must be the same.
    dt = np.float32 if single else np.float64
    rng = np.random.default_rng(7)
    specials = [0.0, -0.0, 1.0, -1.0, 2.5, 0.1, 1 / 3, 1e10, 1e-10, 1e16, 1e17, 100000.0, 1000000.0,
                16777217.0, 123456789.0, 3.4028235e38, -3.4028235e38, 1e-45, 1.17549435e-38, 5e-324,
                1.7976931348623157e308, math.nan, math.inf, -math.inf]
    bits = rng.integers(0, 2**32 if single else 2**63, 3000, dtype=np.uint64)
    with np.errstate(over="ignore"):  # float64's largest values become inf in float32, as intended
        tiled = np.tile(np.array(specials).astype(dt), 4)
    arrays = [tiled, rng.standard_normal(500).astype(dt) * 1e6,
              rng.integers(-1000, 1000, 500).astype(dt), bits.astype(np.uint32 if single else np.uint64).view(dt)]
    for a in arrays:
        with np.errstate(all="ignore"):
            looped = json_writer._float_texts_looped(a.tolist(), single)
        assert len(a) > json_writer._SMALL_FLOATS  # so float_texts itself takes the vectorised way
        assert json_writer.float_texts(a, single) == looped
        short = a[:json_writer._SMALL_FLOATS]
        assert json_writer.float_texts(short, single) == looped[:json_writer._SMALL_FLOATS]
