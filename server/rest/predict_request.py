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

The common request (well-formed numeric nested lists) is converted by numpy in one call; only when that
fails or a value needs a closer look does an element-by-element path run, to raise TF Serving's message.
Checking the arrays against the signature (dtype, shape, missing inputs) is the core's job
(server/dataplane.py calls server/validation.py), for REST and gRPC alike.
"""
from __future__ import annotations

import binascii
import math
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from ..errors import ServingError, invalid_argument
from ..signatures import DEFAULT_SIGNATURE, Signature, TensorSpec, shape_text
from . import fastjson
from .json_reader import JsonParseError, parse
from .json_values import b64_decode, format_error, is_lossless, lossy_error
from .json_writer import json_type, to_bytes, value_to_string

_INSTANCES, _INPUTS, _SIGNATURE = "instances", "inputs", "signature_name"

_FLOAT_TARGETS = {types_pb2.DT_FLOAT: (1 << 24) - 1, types_pb2.DT_HALF: (1 << 24) - 1,
                  types_pb2.DT_DOUBLE: (1 << 53) - 1}
# JSON integers an integer input accepts. TF Serving checks the int32 range for 8/16-bit types and lets
# TensorFlow truncate; here a value that does not fit the declared type is refused instead.
_INT_RANGES = {
    types_pb2.DT_INT8: (-(1 << 7), (1 << 7) - 1), types_pb2.DT_INT16: (-(1 << 15), (1 << 15) - 1),
    types_pb2.DT_INT32: (-(1 << 31), (1 << 31) - 1), types_pb2.DT_INT64: (-(1 << 63), (1 << 63) - 1),
    types_pb2.DT_UINT8: (0, (1 << 8) - 1), types_pb2.DT_UINT16: (0, (1 << 16) - 1),
    types_pb2.DT_UINT32: (0, (1 << 32) - 1), types_pb2.DT_UINT64: (0, (1 << 64) - 1),
}


class JsonDoc(dict):
    """A parsed request object. `may_have_bools` is False when the body holds no true/false token,
    which lets numeric inputs skip the look for booleans mixed into numbers."""

    __slots__ = ("may_have_bools",)


def parse_json(body: bytes) -> dict:
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


def _parse_object(body: bytes, cls: type) -> JsonDoc:
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
    held = getattr(doc, "held", None)
    if held is not None:
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
        inputs, columnar = _decode_rows(instances, specs, may_bools), False
    elif _INPUTS in doc:
        inputs, columnar = _decode_columns(doc[_INPUTS], specs, may_bools), True
    else:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    return inputs, columnar


# ---------------------------------------------------------------- predict: numeric bodies, fast

class HeldTensor:
    """A top-level "instances"/"inputs" value that is a dense array of numbers, not yet converted:
    its text, its numbers (orjson's ints and floats, row-major) and its shape."""

    __slots__ = ("key", "text", "values", "shape", "exact")

    def __init__(self, key: str, text: bytes, values: list, shape: tuple[int, ...]):
        self.key, self.text, self.values, self.shape = key, text, values, shape
        self.exact = fastjson.exact_as_rapidjson(text)  # orjson's values are rapidjson's, bit for bit

    def __repr__(self) -> str:
        return f"HeldTensor({self.key!r}, shape={self.shape})"


class PredictDoc(JsonDoc):
    """A predict request from `parse_predict`. `held` is None (the doc is parse_json's) or a
    HeldTensor, which then also stands as the value of its member; `full()` gives parse_json's doc."""

    __slots__ = ("held",)

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
# (numpy, float64 then the input's type). Beyond them an integer would lose precision, which TF Serving
# refuses; _fast sends those values to the exact reader, and so does the fallback here.
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
    values = np.fromiter(held.values, np.float64, len(held.values))
    if not (values.max() <= limit and values.min() >= -limit):
        return None
    if not held.exact and (spec.dtype == types_pb2.DT_DOUBLE or not fastjson.same_float32(values)):
        return None  # rapidjson's reading of some number may differ from orjson's: the exact reader
    # Row format with one input: the instances list is the batch; columnar: "inputs" is the tensor.
    return values.astype(spec.np_dtype, copy=False).reshape(held.shape)


def _is_b64(v: Any) -> bool:
    return type(v) is dict and len(v) == 1 and isinstance(v.get("b64"), str)


def _is_element_object(v: Any) -> bool:
    return isinstance(v, dict) and not _is_b64(v)


def _decode_rows(instances: list, specs: dict[str, TensorSpec], may_bools: bool) -> dict[str, np.ndarray]:
    names = list(specs)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple "
                               "input tensors required as per tensorinfo_map")
    objects = _is_element_object(instances[0])
    if objects:
        name_set = set(names)
        if all(_is_element_object(e) and e.keys() == name_set for e in instances):
            out = {}
            for name in names:
                arr = _convert_with_numpy(_column(instances, name), specs[name], may_bools)
                if arr is None:
                    break
                out[name] = arr
            else:
                return out
    elif not any(_is_element_object(e) for e in instances):
        arr = _convert_with_numpy(instances, specs[names[0]], may_bools)
        if arr is not None:
            return {names[0]: arr}
    return _InstancesReader(specs).read(instances, objects)


def _column(instances: list, name: str) -> list:
    return [e[name] for e in instances]


def _status_text(e: ServingError) -> str:
    return f"{e.code}: {e.message}"  # tensorflow::Status::ToString


class _InstancesReader:
    """TF Serving's FillTensorMapFromInstancesList, element by element, for its exact errors."""

    def __init__(self, specs: dict[str, TensorSpec]):
        self.specs = specs
        self.values: dict[str, list] = {}
        self.shapes: dict[str, list] = {}

    def read(self, instances: list, objects: bool) -> dict[str, np.ndarray]:
        names = list(self.specs)
        for i, elem in enumerate(instances):
            if objects:
                if not _is_element_object(elem):
                    raise invalid_argument(f"Expecting object but got list at item {i} of input list")
                for key, item in elem.items():
                    try:
                        self.add(item, key)
                    except ServingError as e:
                        raise invalid_argument(f"Failed to process element: {i} key: {key} of 'instances' "
                                               f"list. Error: {_status_text(e)}") from None
                if set(elem) != set(names):
                    raise invalid_argument(
                        f"Failed to process element: {i} of 'instances' list. JSON object: "
                        f"{value_to_string(elem)} keys must be equal to: {','.join(sorted(names))}")
            else:
                if _is_element_object(elem):
                    raise invalid_argument(f"Expecting value/list but got object at item {i} of input list")
                try:
                    self.add(elem, names[0])
                except ServingError as e:
                    raise invalid_argument(f"Failed to process element: {i} of 'instances' list. "
                                           f"Error: {_status_text(e)}") from None
        count = len(instances)
        return {name: _to_array(self.values[name], self.specs[name], [count] + self.shapes[name])
                for name in self.values}

    def add(self, item: Any, name: str) -> None:
        if name not in self.specs:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        spec = self.specs[name]
        shape = _get_dense_tensor_shape(item)
        flat: list = []
        _fill_tensor_values(item, 0, shape, spec, flat)
        if name not in self.shapes:
            self.shapes[name] = shape
            self.values[name] = flat
            return
        expected = self.shapes[name]
        if math.prod(expected) != len(flat):
            raise invalid_argument(f"Expecting tensor size: {math.prod(expected)} but got: {len(flat)}")
        if expected != shape:
            raise invalid_argument(f"Expecting shape {shape_text(expected)} but got: {shape_text(shape)}")
        self.values[name].extend(flat)


def _decode_columns(val: Any, specs: dict[str, TensorSpec], may_bools: bool) -> dict[str, np.ndarray]:
    names = list(specs)
    if not isinstance(val, dict) or _is_b64(val):
        if len(names) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple "
                                   "input tensors required as per tensorinfo_map")
        return {names[0]: _tensor(val, specs[names[0]], may_bools)}
    out = {}
    for name in names:  # keys the signature does not declare are ignored, as TF Serving does
        if name not in val:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = _tensor(val[name], specs[name], may_bools)
    return out


def _tensor(val: Any, spec: TensorSpec, may_bools: bool) -> np.ndarray:
    arr = _convert_with_numpy(val, spec, may_bools)
    if arr is not None:
        return arr
    shape = _get_dense_tensor_shape(val)
    flat: list = []
    _fill_tensor_values(val, 0, shape, spec, flat)
    return _to_array(flat, spec, shape)


def _has_bool(value: list) -> bool:
    stack = [value]
    while stack:
        for e in stack.pop():
            t = type(e)
            if t is list:
                stack.append(e)
            elif t is bool:
                return True
    return False


def _convert_with_numpy(value: Any, spec: TensorSpec, may_bools: bool) -> np.ndarray | None:
    """One numpy call for a well-formed numeric nested list; None when the exact reader must decide."""
    dt = spec.dtype
    if type(value) is not list or (dt not in _FLOAT_TARGETS and dt not in _INT_RANGES
                                   and dt != types_pb2.DT_BOOL):
        return None
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    kind = a.dtype.kind
    if a.size == 0:
        return None
    if dt == types_pb2.DT_BOOL:
        return a if kind == "b" else None
    if kind not in "iuf" or (may_bools and _has_bool(value)):
        return None
    if dt in _FLOAT_TARGETS:
        # Integers beyond 2^24 (float) or 2^53 (double) lose precision, floats beyond float range do not
        # fit: TF Serving refuses both; NaN/inf and large values go to the exact reader.
        with np.errstate(invalid="ignore"):
            m = np.max(np.abs(a))
        if not m <= _FLOAT_TARGETS[dt]:
            return None
        return a.astype(spec.np_dtype)
    if kind == "f":
        return None
    lo, hi = _INT_RANGES[dt]
    if a.min() < lo or a.max() > hi:
        return None
    return a.astype(spec.np_dtype, copy=False)


def _get_dense_tensor_shape(val: Any) -> list:
    """TF Serving's GetDenseTensorShape: the shape read along the first elements."""
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _fill_tensor_values(v: Any, level: int, shape: list, spec: TensorSpec, out: list) -> None:
    """TF Serving's FillTensorProto: every leaf at depth rank, every list of the expected size."""
    rank = len(shape)
    if not isinstance(v, list):
        if level != rank:
            raise invalid_argument(f"JSON Value: {value_to_string(v)} found at incorrect level: {level + 1} "
                                   f"in the JSON DOM. Expected at level: {rank}")
        if isinstance(v, dict):
            if spec.dtype != types_pb2.DT_STRING:
                raise _type_error(v, spec)
            out.append(_b64_value(v))
        else:
            out.append(_add_value_to_tensor(v, spec))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(v) != shape[level]:
        raise invalid_argument(f"Encountered list at unexpected size: {len(v)} at level: {level} "
                               f"expected size: {shape[level]}")
    for e in v:
        _fill_tensor_values(e, level + 1, shape, spec, out)


def _type_error(v: Any, spec: TensorSpec) -> ServingError:
    return invalid_argument(f"JSON Value: {value_to_string(v)} Type: {json_type(v)} "
                            f"is not of expected type: {spec.dtype_name}")


def _add_value_to_tensor(v: Any, spec: TensorSpec) -> Any:
    """TF Serving's AddValueToTensor for one scalar: the Python value for the declared type."""
    dt = spec.dtype
    t = type(v)
    if dt in _FLOAT_TARGETS:
        if t is not int and t is not float:
            raise _type_error(v, spec)
        if not is_lossless(v, single=dt != types_pb2.DT_DOUBLE):
            raise lossy_error(v, "double" if dt == types_pb2.DT_DOUBLE else "float")
        return float(v)
    if dt in _INT_RANGES:
        lo, hi = _INT_RANGES[dt]
        if t is not int or not lo <= v <= hi:
            raise _type_error(v, spec)
        return v
    if dt == types_pb2.DT_STRING:
        if t is not str:
            raise _type_error(v, spec)
        return to_bytes(v)
    if dt == types_pb2.DT_BOOL:
        if t is not bool:
            raise _type_error(v, spec)
        return v
    raise ServingError("UNIMPLEMENTED", f"Conversion of JSON Value: {value_to_string(v)} "
                                        f"to type: {spec.dtype_name}")


def _b64_value(v: dict) -> bytes:
    if not _is_b64(v):
        raise invalid_argument(f"JSON Value: {value_to_string(v)} not formatted correctly for base64 data")
    try:
        return b64_decode(v["b64"])
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise invalid_argument("Unable to base64 decode") from None


_MAX_DIMS = 64


def _to_array(flat: list, spec: TensorSpec, shape: list) -> np.ndarray:
    if len(shape) > _MAX_DIMS:  # numpy's limit (TensorFlow's is 254); deeper nesting is refused
        raise invalid_argument(f"Expecting a tensor of at most {_MAX_DIMS} dimensions but got {len(shape)}")
    if spec.np_dtype == np.dtype(object):
        arr = np.empty(len(flat), dtype=object)
        arr[:] = flat
        return arr.reshape(shape)
    return np.array(flat, dtype=spec.np_dtype).reshape(shape)
