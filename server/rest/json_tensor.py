"""JSON values -> numpy arrays of a signature's declared types, as TF Serving fills tensors from JSON.

TF Serving (util/json_tensor.cc: FillTensorMapFromInstancesList, FillTensorMapFromInputsMap) converts
every value of a predict request to its input's declared type, with its own error messages:

- `decode_rows(instances, specs, may_bools)`: row format, the non-empty "instances" list;
- `decode_columns(value, specs, may_bools)`: columnar format, the "inputs" value.

Both give {input key: array}. The common request (well-formed numeric nested lists) is converted by
numpy in one call; only when that fails or a value needs a closer look does an element-by-element path
run, to raise TF Serving's message. `may_bools` False says the body holds no true/false token, which lets
numeric inputs skip the look for booleans mixed into numbers. predict_request.py reads the request
around them.
"""
from __future__ import annotations

import binascii
import math
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from ..errors import ServingError, invalid_argument
from ..signatures import TensorSpec, shape_text
from .json_values import b64_decode
from .json_writer import json_type, to_bytes, value_to_string

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


def _is_b64(v: Any) -> bool:
    return type(v) is dict and len(v) == 1 and isinstance(v.get("b64"), str)


def _is_element_object(v: Any) -> bool:
    return isinstance(v, dict) and not _is_b64(v)


def decode_rows(instances: list, specs: dict[str, TensorSpec], may_bools: bool) -> dict[str, np.ndarray]:
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


def decode_columns(val: Any, specs: dict[str, TensorSpec], may_bools: bool) -> dict[str, np.ndarray]:
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
        # Integers beyond 2^24 (float) or 2^53 (double) round twice in TF Serving (to double, then to
        # float), floats beyond the float range become +-inf: NaN/inf and large values go to the exact
        # reader, which converts one value at a time as rapidjson's GetFloat/GetDouble do.
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
        # rapidjson's GetFloat/GetDouble: the number as a double, then cast (beyond FLT_MAX: +-inf;
        # an integer beyond 2^24 rounds), as TF Serving has done since it dropped IsLosslessDecimal.
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
    with np.errstate(over="ignore"):  # a double beyond the float range is +-inf, as C's cast makes it
        return np.array(flat, dtype=spec.np_dtype).reshape(shape)
