"""The numeric fast path of server/rest/predict_request.py (parse_predict + decode_predict, rest/fastjson.py).

Two promises: common numeric bodies take the fast path (observed by watching the held array being
used, never through timing), and every body gets exactly the arrays or the error the ordinary path
(parse_json + decode_predict) gives. The core validates the arrays afterwards (validation.py); the
outcomes here include that step, as every request takes it.
"""
import json

import numpy as np
import orjson
import pytest
from tensorflow.core.framework import types_pb2

from server.errors import ServingError
from server.rest import predict_request
from server.validation import validate_inputs

from .sigs import make_signature

F, D, H, I32, I64, S, B = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF, types_pb2.DT_INT32,
                           types_pb2.DT_INT64, types_pb2.DT_STRING, types_pb2.DT_BOOL)


def make_sig(inputs, name="call"):
    """A Signature from a SignatureDef proto; shape None = unknown rank."""
    return make_signature(inputs, name=name)


MNIST = make_sig({"inputs": (F, [-1, 28, 28, 1])})
ANY_FLOAT = make_sig({"x": (F, None)})


def outcome(parse, body, sig):
    """What a predict body decodes to: arrays compared bit for bit (dtype, shape, bytes), or the error."""
    try:
        inputs, columnar = predict_request.decode_predict(parse(body), sig)
        validate_inputs(inputs, sig)
    except ServingError as e:
        return ("error", e.code, e.message)
    return ("ok", columnar, {k: (v.dtype.str, v.shape, v.tobytes() if v.dtype != object else v.tolist())
                             for k, v in inputs.items()})


def fast_and_normal(body, sig):
    """(fast path taken?, its outcome, the ordinary path's outcome)."""
    if isinstance(body, str):
        body = body.encode()
    used = []
    held_array = predict_request._held_array

    def watched(*args):
        array = held_array(*args)
        used.append(array is not None)
        return array

    predict_request._held_array = watched
    try:
        got = outcome(predict_request.parse_predict, body, sig)
    finally:
        predict_request._held_array = held_array
    return any(used), got, outcome(predict_request.parse_json, body, sig)


def mnist_images(n, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.random((n, 28, 28, 1)).astype(np.float32)
    img[rng.random(img.shape) < 0.8] = 0.0
    return img


# ------------------------------------------------------------------ the fast path is taken

TAKEN = {
    "mnist rows, json.dumps": (json.dumps({"signature_name": "call", "instances": mnist_images(3).tolist()}), MNIST),
    "mnist rows, orjson": (orjson.dumps({"signature_name": "call", "instances": mnist_images(3).tolist()}), MNIST),
    "mnist columnar": (json.dumps({"inputs": mnist_images(2).tolist(), "signature_name": "call"}), MNIST),
    "mnist rows, pretty": (json.dumps({"instances": mnist_images(1).tolist()}, indent=2), MNIST),
    "1-D columnar": ('{"inputs": [1.5, 2, 3]}', make_sig({"x": (F, [-1])})),
    "scalar per row": ('{"instances": [1.5, -2.25, 3]}', make_sig({"x": (F, [-1])})),
    "exponents": ('{"instances": [[1e-3, 2.5E+2, -3e2, 1E0, 0.5e-45]]}', ANY_FLOAT),
    "negatives": ('{"instances": [[-1, -0.5], [-0.0, -0]]}', ANY_FLOAT),
    "ints into float": ('{"instances": [[1, 2], [3, 16777215]]}', ANY_FLOAT),
    "float32 rounding": ('{"instances": [0.1, 0.33333333333333331, 16777215.0, 1e-46]}', ANY_FLOAT),
    "whitespace everywhere": ('\n{ "instances" :\t[ [ 1 ,2 ] ,\r\n [3, 4 ] ] , "signature_name":"call" }\n',
                              ANY_FLOAT),
    "signature name after": ('{"instances": [[1.0]], "signature_name": "call"}', ANY_FLOAT),
    "other members kept": ('{"meta": {"a": [true, "x", null]}, "instances": [[1.0]]}', ANY_FLOAT),
    "'instances' as a string value first": ('{"signature_name": "instances", "instances": [1.0]}', ANY_FLOAT),
    "a str body": ('{"instances": [2.5]}', ANY_FLOAT),
    "validation error": ('{"instances": [[1.0, 2.0, 3.0]]}', make_sig({"x": (F, [-1, 2])})),
    "rank error": ('{"instances": [1.0, 2.0]}', MNIST),
    # the rest of the body is read by the same reader: first of repeated names, NaN (json_reader.py)
    "key repeated, first is numeric": ('{"instances": [1.0], "instances": [[2.0, 3.0]]}', ANY_FLOAT),
    "key repeated, last is a number": ('{"instances": [1.0], "instances": 0}', ANY_FLOAT),
    "NaN elsewhere": ('{"instances": [[1.0, 2.0]], "x": NaN}', ANY_FLOAT),
    "double values within 15 digits": ('{"inputs": [[0.1, 0.2], [1, -2.5]]}', make_sig({"x": (D, [-1, 2])})),
}


@pytest.mark.parametrize("case", TAKEN)
def test_fast_path_taken_and_same_answer(case):
    body, sig = TAKEN[case]
    taken, fast, normal = fast_and_normal(body, sig)
    assert taken
    assert fast == normal


def test_undeclared_shapes_pass_the_fast_path_too():
    # A shape the signature does not declare is fed to the model as TF Serving feeds it (refused here before).
    _, fast, normal = fast_and_normal(*TAKEN["validation error"])
    assert fast[0] != "error" and fast == normal


def test_mnist_arrays_round_trip():
    images = mnist_images(100, seed=1)
    for key, columnar in (("instances", False), ("inputs", True)):
        doc = predict_request.parse_predict(orjson.dumps({"signature_name": "call", key: images.tolist()}))
        assert predict_request.get_signature_name(doc) == "call"
        inputs, col = predict_request.decode_predict(doc, MNIST)
        assert col is columnar
        assert inputs["inputs"].dtype == np.float32 and inputs["inputs"].shape == (100, 28, 28, 1)
        np.testing.assert_array_equal(inputs["inputs"], images)


def _random_body(rng):
    """A random dense numeric array, written in one of several ways, as rows or columns."""
    shape = tuple(int(d) for d in rng.integers(1, 5, size=rng.integers(1, 5)))
    kind = rng.integers(0, 4)
    if kind == 0:
        values = rng.integers(-1000, 1000, size=shape).tolist()          # JSON integers
    elif kind == 1:
        values = (rng.standard_normal(shape) * 10.0 ** rng.integers(-40, 30)).tolist()  # exponents
    elif kind == 2:
        values = rng.random(shape).astype(np.float32).tolist()            # float32 values, 17 digits
    else:                                                                 # ints and floats mixed
        flat = [int(v) if i % 3 else float(v) for i, v in enumerate(rng.integers(-99, 99, size=int(np.prod(shape))))]
        values = np.array(flat, dtype=object).reshape(shape).tolist()
    key = "instances" if rng.random() < 0.5 else "inputs"
    style = rng.integers(0, 3)
    doc = {"signature_name": "call", key: values} if rng.random() < 0.5 else {key: values}
    if style == 0:
        return orjson.dumps(doc)
    if style == 1:
        return json.dumps(doc).encode()
    return json.dumps(doc, indent=int(rng.integers(0, 4))).encode()


def test_random_shapes_agree_with_the_ordinary_path():
    rng = np.random.default_rng(6)
    sigs = [ANY_FLOAT, make_sig({"x": (D, None)})]
    taken_count = 0
    for i in range(300):
        body = _random_body(rng)
        taken, fast, normal = fast_and_normal(body, sigs[i % 2])
        assert fast == normal, body[:200]
        taken_count += taken
    # Only values too large for an exact float (beyond 2**24 in magnitude) leave the fast path.
    assert taken_count > 200


# ------------------------------------------------------------------ everything else: the ordinary path

FALLBACK = {
    # not a dense array of numbers
    "ragged": ('{"instances": [[1, 2], [3]]}', ANY_FLOAT),
    "ragged deeper": ('{"instances": [[[1], [2]], [[3], [4, 5]]]}', ANY_FLOAT),
    "mixed depth": ('{"instances": [1, [2]]}', ANY_FLOAT),
    "empty instances": ('{"instances": []}', ANY_FLOAT),
    "empty inner list": ('{"instances": [[]]}', ANY_FLOAT),
    "empty inner lists": ('{"inputs": [[], []]}', ANY_FLOAT),
    "one empty of two": ('{"instances": [[1], []]}', ANY_FLOAT),
    "strings": ('{"instances": [["a", "b"]]}', ANY_FLOAT),
    "NaN and Infinity": ('{"instances": [[NaN, Infinity, -Infinity]]}', ANY_FLOAT),
    "true and false": ('{"instances": [[1.0, true], [false, 2.0]]}', ANY_FLOAT),
    "null": ('{"inputs": [1.0, null]}', ANY_FLOAT),
    "b64 objects": ('{"instances": [{"b64": "aGVsbG8="}]}', make_sig({"s": (S, None)})),
    "nested objects": ('{"instances": [{"x": [1.0]}]}', ANY_FLOAT),
    "inputs object": ('{"inputs": {"x": [1.0, 2.0]}}', ANY_FLOAT),
    "scalar inputs": ('{"inputs": 1.5}', ANY_FLOAT),
    # numbers the ordinary path must judge
    "beyond float32 range": ('{"instances": [1e39]}', ANY_FLOAT),
    "just beyond FLT_MAX": ('{"instances": [3.4028235677973366e38]}', ANY_FLOAT),
    "beyond double range": ('{"instances": [1e400]}', ANY_FLOAT),
    "int too big for float": ('{"instances": [16777217]}', ANY_FLOAT),
    "large float for float": ('{"inputs": [1e8, 1, 2.5]}', ANY_FLOAT),  # accepted, the ordinary way
    "int too big for double": ('{"instances": [9007199254740993]}', make_sig({"x": (D, None)})),
    "int beyond 64 bits": ('{"instances": [18446744073709551616]}', ANY_FLOAT),
    # doubles with 16+ digits or an exponent: rapidjson's reading may differ from orjson's by an ulp
    "ints into double": ('{"instances": [[1, 2], [3, 9007199254740991]]}', make_sig({"x": (D, None)})),
    "double values": ('{"inputs": [[0.1, 0.2], [1e15, -1e-300]]}', make_sig({"x": (D, [-1, 2])})),
    # requests whose shape or errors involve the whole document
    "both keys": ('{"instances": [[1.0]], "inputs": [[1.0]]}', ANY_FLOAT),
    "both keys, inputs first": ('{"inputs": [[1.0]], "instances": [[1.0]]}', ANY_FLOAT),
    "key only in a nested object": ('{"meta": {"instances": [1.0]}, "inputs": "x"}', ANY_FLOAT),
    "placeholder forged": ('{"note": "\\u0000held", "instances": [1.0]}', ANY_FLOAT),
    # signatures the fast path leaves alone
    "two inputs, rows": ('{"instances": [[1.0, 2.0]]}', make_sig({"a": (F, None), "b": (F, None)})),
    "two inputs, columns": ('{"inputs": [[1.0, 2.0]]}', make_sig({"a": (F, None), "b": (F, None)})),
    "no inputs": ('{"instances": [1.0]}', make_sig({})),
    "int32 with a fraction": ('{"instances": [[1, 1.5]]}', make_sig({"x": (I32, None)})),
    "int32 fine": ('{"instances": [[1, 2], [3, 4]]}', make_sig({"x": (I32, None)})),
    "int64 columns": ('{"inputs": [1, -2, 3]}', make_sig({"x": (I64, [-1])})),
    "bool": ('{"instances": [1, 0]}', make_sig({"x": (B, None)})),
    "string": ('{"instances": [1.0]}', make_sig({"x": (S, None)})),
    "half": ('{"instances": [1.0, 2.5]}', make_sig({"x": (H, None)})),
    # malformed JSON that looks numeric: the parse error, with its offset, is the ordinary parser's
    "extra bracket": ('{"instances": [[1, 2]]]}', ANY_FLOAT),
    "missing bracket": ('{"instances": [[1, 2]}', ANY_FLOAT),
    "unterminated body": ('{"instances": [1, 2]', ANY_FLOAT),
    "two numbers, no comma": ('{"instances": [1 2]}', ANY_FLOAT),
    "number before a list": ('{"instances": [1[2]]}', ANY_FLOAT),
    "number outside its list": ('{"instances": [[1],1[]]}', ANY_FLOAT),
    "number after a list": ('{"instances": [[1]2]}', ANY_FLOAT),
    "number after the array": ('{"instances": [[1]] 5}', ANY_FLOAT),
    "lists side by side": ('{"instances": [[1][2]]}', ANY_FLOAT),
    "leading zero": ('{"instances": [01]}', ANY_FLOAT),
    "no fraction digits": ('{"instances": [1.]}', ANY_FLOAT),
    "no integer digits": ('{"instances": [.5]}', ANY_FLOAT),
    "plus sign": ('{"instances": [+1]}', ANY_FLOAT),
    "no exponent digits": ('{"instances": [1e]}', ANY_FLOAT),
    "lone minus": ('{"instances": [-]}', ANY_FLOAT),
    "trailing comma": ('{"instances": [1,]}', ANY_FLOAT),
    "leading comma": ('{"instances": [,1]}', ANY_FLOAT),
    "double comma": ('{"instances": [1,,2]}', ANY_FLOAT),
    "form feed is not JSON whitespace": ('{"instances": [1,\f2]}', ANY_FLOAT),
    "deeper than the fast path goes": ('{"inputs": ' + "[" * 40 + "1" + "]" * 40 + "}", ANY_FLOAT),
}


@pytest.mark.parametrize("case", FALLBACK)
def test_fallback_gives_the_ordinary_answer(case):
    body, sig = FALLBACK[case]
    taken, fast, normal = fast_and_normal(body, sig)
    assert not taken
    assert fast == normal


def test_fallback_messages_are_tf_servings():
    # a few of the above, spelled out, so that "same as the ordinary path" is not "same nonsense"
    assert fast_and_normal(*FALLBACK["ragged"])[1] == (
        "error", "INVALID_ARGUMENT",
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 1")
    # beyond 2^24 an integer rounds (to double, then to float), as rapidjson's GetFloat does
    outcome = fast_and_normal(*FALLBACK["int too big for float"])[1]
    assert outcome == ("ok", False, {"x": ("<f4", (1,), np.float32(16777216).tobytes())}), outcome
    assert fast_and_normal(*FALLBACK["both keys"])[1][2].endswith(
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")


@pytest.mark.parametrize("body", [b"", b"   ", b"[1.0]", b'{"instances": [1, 2]', b'{"instances": [1 2]}',
                                  b'{"instances": [[1]]]', b'{"instances": [[1]]]}'])
def test_parse_errors_are_parse_jsons(body):
    with pytest.raises(ServingError) as want:
        predict_request.parse_json(body)
    with pytest.raises(ServingError) as got:
        predict_request.parse_predict(body)
    assert (got.value.code, got.value.message) == (want.value.code, want.value.message)


@pytest.mark.parametrize("body", [b'{"a": 1} {"instances": [1]}', b'{"instances": [[1]]} xyz',
                                  b'{"instances": [[1.0]], "instances": [[2.0]]}'])
def test_trailing_content_and_repeated_names_as_parse_json(body):
    # kParseStopWhenDoneFlag (util/json_tensor.cc ParseJson) and the first of repeated names
    assert dict(predict_request.parse_predict(body).full()) == predict_request.parse_json(body)


@pytest.mark.parametrize("body", [b'{"signature_name": 5, "instances": [[1.0, 2.0]]}',
                                  b'{"instances": [[1.0, 2.0]], "signature_name": null}'])
def test_signature_name_errors_print_the_whole_request(body):
    with pytest.raises(ServingError) as want:
        predict_request.get_signature_name(predict_request.parse_json(body))
    with pytest.raises(ServingError) as got:
        predict_request.get_signature_name(predict_request.parse_predict(body))
    assert got.value.message == want.value.message and "1.0" in got.value.message


# ------------------------------------------------------------------ the pieces

def test_predict_doc_holds_the_tensor_and_gives_the_full_doc():
    body = b'{"instances": [[1, 2.5]], "signature_name": "call", "note": true}'
    doc = predict_request.parse_predict(body)
    assert isinstance(doc.held, predict_request.HeldTensor) and doc.held.shape == (1, 2)
    assert doc.held.values.tolist() == [1.0, 2.5] and doc["instances"] is doc.held
    full = doc.full()
    assert full == predict_request.parse_json(body) and list(full) == ["instances", "signature_name", "note"]
    assert full.may_have_bools is True
    plain = predict_request.parse_predict(b'{"instances": ["a"]}')
    assert plain.held is None and plain.full() == {"instances": ["a"]}
