"""Model outputs -> TF Serving's predict response JSON, byte for byte (rapidjson PrettyWriter layout).

Row format ("instances" in the request) answers {"predictions": ...}, columnar ("inputs") answers
{"outputs": ...}; floats as TF Serving's WriteDecimal, strings as JSON strings, outputs whose name ends
in "_bytes" as {"b64": ...} objects (util/json_tensor.cc: MakeJsonFromTensors).
"""
from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

from ..errors import invalid_argument
from ..signatures import tf_type_name
from .json_writer import float_texts, json_string, to_bytes

_IND = ["    " * i for i in range(64)]


def _ind(depth: int) -> str:
    return _IND[depth] if depth < len(_IND) else "    " * depth


def encode_predict(outputs: dict[str, np.ndarray], columnar: bool) -> bytes:
    """Output arrays -> TF Serving's JSON answer, byte for byte (rapidjson PrettyWriter layout).

    Row format: {"predictions": [...]} (one output: its rows; several: one object per row, keys sorted,
    all outputs sharing the 0-th dimension). Columnar: {"outputs": tensor} or {"outputs": {name: ...}}.
    Raises INVALID_ARGUMENT "Cannot convert empty tensor map to JSON", "Tensor name: N has no shape
    information ", "Tensor name: N has inconsistent batch size: B expecting: A", "Failed to write JSON
    value for tensor type: T".
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {n: np.asarray(outputs[n]) for n in names}
    text = _columnar_text(names, arrays) if columnar else _row_text(names, arrays)
    return to_bytes(text)


def _row_text(names: list[str], arrays: dict[str, np.ndarray]) -> str:
    batch = -1
    for n in names:
        a = arrays[n]
        if a.ndim == 0:
            raise invalid_argument(f"Tensor name: {n} has no shape information ")
        if batch >= 0 and a.shape[0] != batch:
            raise invalid_argument(f"Tensor name: {n} has inconsistent batch size: {a.shape[0]} "
                                   f"expecting: {batch}")
        batch = a.shape[0]
    if batch == 0:
        return '{\n    "predictions": []\n}'
    if len(names) == 1:
        rows = _tensor_texts(arrays[names[0]], names[0], depth=2, single_line=True, rows=True)
        return '{\n    "predictions": [' + ", ".join(rows) + "\n    ]\n}"
    per_name = [("\n            " + json_string(n) + ": ",
                 _tensor_texts(arrays[n], n, depth=3, single_line=True, rows=True)) for n in names]
    items = ["\n        {" + ",".join(key + rows[i] for key, rows in per_name) + "\n        }"
             for i in range(batch)]
    return '{\n    "predictions": [' + ",".join(items) + "\n    ]\n}"


def _columnar_text(names: list[str], arrays: dict[str, np.ndarray]) -> str:
    if len(names) == 1:
        n = names[0]
        return '{\n    "outputs": ' + _tensor_texts(arrays[n], n, depth=1, single_line=False, rows=False)[0] + "\n}"
    parts = ["\n        " + json_string(n) + ": " + _tensor_texts(arrays[n], n, depth=2, single_line=False,
                                                              rows=False)[0] for n in names]
    return '{\n    "outputs": {' + ",".join(parts) + "\n    }\n}"


def _tensor_texts(a: np.ndarray, name: str, depth: int, single_line: bool, rows: bool) -> list[str]:
    """The text of a tensor (rows=False: one text) or of each of its rows (rows=True).

    `depth` is the writer's nesting level where the tensor (or row) starts; it sets the indentation of
    multi-line arrays and of {"b64": ...} objects, as the PrettyWriter would.
    """
    dims = list(a.shape[1:] if rows else a.shape)
    outer = a.shape[0] if rows else 1
    items = _element_texts(a, name, depth + len(dims))
    for j in range(len(dims) - 1, -1, -1):
        d = dims[j]
        groups = outer * math.prod(dims[:j])
        if d == 0:
            items = ["[]"] * groups
            continue
        if single_line:
            items = ["[" + ", ".join(items[g * d:(g + 1) * d]) + "]" for g in range(groups)]
        else:
            inner = "\n" + _ind(depth + j + 1)
            sep, close = "," + inner, "\n" + _ind(depth + j) + "]"
            items = ["[" + inner + sep.join(items[g * d:(g + 1) * d]) + close for g in range(groups)]
    return items


def _element_texts(a: np.ndarray, name: str, depth: int) -> list[str]:
    kind = a.dtype.kind
    flat = a.reshape(-1)
    if kind == "f":
        if a.dtype.itemsize <= 4:
            return float_texts(flat.astype(np.float32, copy=False), single=True)
        return float_texts(flat.astype(np.float64, copy=False), single=False)
    if kind in "iu":
        return list(map(str, flat.tolist()))
    if kind == "b":
        return ["true" if x else "false" for x in flat.tolist()]
    if kind in "OSU":
        values = flat.tolist()
        if name.endswith("_bytes"):
            head = "{\n" + _ind(depth + 1) + '"b64": "'
            tail = '"\n' + _ind(depth) + "}"
            return [head + base64.b64encode(_as_bytes(x)).decode("ascii") + tail for x in values]
        return [json_string(x if isinstance(x, (bytes, str)) else str(x)) for x in values]
    if flat.size == 0:
        return []
    raise invalid_argument(f"Failed to write JSON value for tensor type: {tf_type_name(a.dtype)}")


def _as_bytes(x: Any) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return to_bytes(x)
    return str(x).encode()
