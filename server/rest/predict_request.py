"""Predict request bodies -> numpy arrays, read exactly as TF Serving reads them.

TF Serving (util/json_tensor.cc: FillPredictRequestFromJson) reads a predict body in row format
("instances") or columnar format ("inputs") and converts every value to the signature's declared type,
with its own error messages. This module does the same:

- `parse_json(body)`: the body as a Python object (dict), NaN/Infinity tokens accepted;
- `get_signature_name(doc)`: the "signature_name" key, "serving_default" when absent;
- `parse_predict(body)`: `parse_json` for predict bodies, with a fast path: a numeric "instances" or
  "inputs" array is read straight from the bytes (rest/fastjson.py) and held aside for
  `decode_predict`, which uses it when the signature allows and otherwise decodes as usual;
- `decode_predict(doc, signature)`: the request -> ({input key: array}, columnar).

The values of "instances" or "inputs" become arrays of the declared types in rest/json_tensor.py.
Checking the arrays against the signature (dtype, shape, missing inputs) is the core's job
(server/dataplane.py calls server/validation.py), for REST and gRPC alike.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
from tensorflow.core.framework import types_pb2

from ..errors import invalid_argument
from ..signatures import DEFAULT_SIGNATURE, Signature
from . import fastjson
from .json_reader import JsonParseError, parse
from .json_tensor import decode_columns, decode_rows
from .json_values import format_error
from .json_writer import to_bytes

_INSTANCES, _INPUTS, _SIGNATURE = "instances", "inputs", "signature_name"


class JsonDoc(dict):
    """A parsed request object. `may_have_bools` is False when the body holds no true/false token,
    which lets numeric inputs skip the look for booleans mixed into numbers."""

    __slots__ = ("may_have_bools",)
    may_have_bools: bool


_Doc = TypeVar("_Doc", bound=JsonDoc)


def parse_json(body: bytes) -> JsonDoc:
    """Parse a request body; the top level must be a JSON object (TF Serving's ParseJson).

    Raises INVALID_ARGUMENT "JSON Parse error: The document is empty" for an empty body,
    "JSON Parse error: <rapidjson message> at offset: <n>" for a body that is not JSON, and
    "JSON Value: <value> Is not object" for a top level that is not an object.
    """
    return _parse_object(_body_bytes(body), JsonDoc)


def _body_bytes(body: bytes | str) -> bytes:
    if isinstance(body, str):
        return to_bytes(body)
    return body if isinstance(body, bytes) else bytes(body)


def _parse_object(body: bytes, cls: type[_Doc]) -> _Doc:
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = parse(body)
    except JsonParseError as e:
        raise invalid_argument(f"JSON Parse error: {e.message} at offset: {e.offset}") from None
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    out = cls(doc)
    out.may_have_bools = b"true" in body or b"false" in body
    return out


def get_signature_name(doc: dict) -> str:
    """The request's "signature_name", or "serving_default" when it is absent or empty."""
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    if _SIGNATURE not in doc:
        return DEFAULT_SIGNATURE
    name = doc[_SIGNATURE]
    if not isinstance(name, str):
        raise format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return name or DEFAULT_SIGNATURE


def decode_predict(doc: dict, signature: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """A predict request -> ({input key: array of the declared dtype}, columnar).

    Row format ("instances") gives columnar=False, columnar format ("inputs") columnar=True.
    DT_STRING inputs come back as object arrays of bytes. The arrays are then checked against the
    signature by the core (validation.validate_inputs). All errors are ServingError, INVALID_ARGUMENT unless a
    dtype cannot be fed from JSON at all (UNIMPLEMENTED, as TF Serving).
    """
    if isinstance(doc, PredictDoc) and (held := doc.held) is not None:
        tensor = _held_array(doc, held, signature)
        if tensor is not None:
            return {next(iter(signature.inputs)): tensor}, held.key == _INPUTS
        doc = doc.full()  # the ordinary path below answers, on exactly what parse_json gives
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    specs = signature.inputs
    if not specs:
        raise invalid_argument(f"Failed to get input map for signature: {signature.name or 'DEFAULT'}")
    may_bools = getattr(doc, "may_have_bools", True)
    if _INSTANCES in doc:
        if _INPUTS in doc:
            raise format_error(doc, "Not formatted correctly expecting only one of 'inputs' or "
                                     "'instances' keys to exist ")
        instances = doc[_INSTANCES]
        if not isinstance(instances, list):
            raise format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise format_error(doc, "No values in 'instances' array")
        inputs, columnar = decode_rows(instances, specs, may_bools), False
    elif _INPUTS in doc:
        inputs, columnar = decode_columns(doc[_INPUTS], specs, may_bools), True
    else:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    return inputs, columnar


# ---------------------------------------------------------------- predict: numeric bodies, fast

class HeldTensor:
    """A top-level "instances"/"inputs" value that is a dense array of numbers, not yet converted:
    its text, its numbers (float64, row-major, as float() of orjson's ints and floats) and its shape."""

    __slots__ = ("key", "text", "values", "shape", "_exact")

    def __init__(self, key: str, text: bytes, values: np.ndarray, shape: tuple[int, ...]):
        self.key, self.text, self.values, self.shape = key, text, values, shape
        self._exact: bool | None = None

    @property
    def exact(self) -> bool:
        """orjson's values are rapidjson's, bit for bit (a scan of the text: asked only when needed)."""
        if self._exact is None:
            self._exact = fastjson.exact_as_rapidjson(self.text)
        return self._exact

    def __repr__(self) -> str:
        return f"HeldTensor({self.key!r}, shape={self.shape})"


class PredictDoc(JsonDoc):
    """A predict request from `parse_predict`. `held` is None (the doc is parse_json's) or a
    HeldTensor, which then also stands as the value of its member; `full()` gives parse_json's doc."""

    __slots__ = ("held",)
    held: HeldTensor | None

    def full(self) -> JsonDoc:
        out = JsonDoc(self)  # same members in the same order: error messages print them
        out.may_have_bools = self.may_have_bools
        if self.held is not None:
            out[self.held.key] = parse(self.held.text)  # what the full parse builds
        return out


# A placeholder for the held value while the rest of the body is parsed. It parses to a string with
# a NUL, which a body can only write as the escape \u0000, so it cannot be mistaken for client data.
_MARK_TEXT, _MARK = b'"\\u0000held"', "\x00held"
# Float inputs whose numbers all lie within these bounds convert as the ordinary path converts them
# (numpy, float64 then the input's type). Beyond them an integer rounds twice in TF Serving (to double,
# then to float) and a double may overflow the float range: the exact reader converts those.
_HELD_LIMITS = {types_pb2.DT_FLOAT: (1 << 24) - 1, types_pb2.DT_DOUBLE: (1 << 53) - 1}


def parse_predict(body: bytes | str) -> PredictDoc:
    """`parse_json` for a predict body: the same doc, the same errors, but a dense numeric
    "instances"/"inputs" array is held aside unconverted (see HeldTensor) for `decode_predict`."""
    body = _body_bytes(body)
    doc = _hold_numeric_value(body)
    if doc is None:
        doc = _parse_object(body, PredictDoc)
        doc.held = None
    return doc


def _hold_numeric_value(body: bytes) -> PredictDoc | None:
    for key in (_INSTANCES, _INPUTS):
        span = fastjson.find_array(body, key.encode())
        if span is not None:
            break
    else:
        return None
    start, end = span
    rest = body[:start] + _MARK_TEXT + body[end:]
    # The rest must parse alone with the placeholder as the value of the top-level member `key`:
    # then the span is that member's whole value (not text inside a string or a nested object), and it
    # is the member rapidjson's first-wins rule keeps if the name is repeated. Errors are the ordinary
    # parser's business.
    if rest.count(b"\\u0000") != 1:
        return None
    try:
        doc = parse(rest)
    except JsonParseError:
        return None
    if type(doc) is not dict or doc.get(key) != _MARK:
        return None
    # A non-string signature_name is an error that prints the whole request: the ordinary path's.
    if not isinstance(doc.get(_SIGNATURE, ""), str):
        return None
    text = body[start:end]
    read = fastjson.read_array(text)
    if read is None:  # not a dense numeric array (ragged, empty, malformed...)
        return None
    out = PredictDoc(doc)
    out.held = out[key] = HeldTensor(key, text, *read)
    out.may_have_bools = b"true" in rest or b"false" in rest  # the held text has no letters but e/E
    return out


def _held_array(doc: dict, held: HeldTensor, signature: Signature) -> np.ndarray | None:
    """The held numbers as the signature's single float/double input, or None: the ordinary path."""
    if _INSTANCES in doc and _INPUTS in doc:  # an error that prints the whole request
        return None
    specs = signature.inputs
    if len(specs) != 1:  # several inputs need objects (rows of them, or one of columns)
        return None
    (spec,) = specs.values()
    limit = _HELD_LIMITS.get(spec.dtype)
    if limit is None:  # integer types refuse 1.5 and check ranges: the ordinary path does that
        return None
    values = held.values
    if not (values.max() <= limit and values.min() >= -limit):
        return None
    # rapidjson's reading of some number may differ from orjson's: then the exact reader. For float32
    # inputs the cheap check comes first: doubles that round to the same float32 either way.
    if spec.dtype == types_pb2.DT_DOUBLE:
        if not held.exact:
            return None
        out = values
    else:
        out = values.astype(np.float32)  # within +-(2^24 - 1): no overflow
        if not fastjson.same_float32(values, out) and not held.exact:
            return None
    # Row format with one input: the instances list is the batch; columnar: "inputs" is the tensor.
    return out.reshape(held.shape)
