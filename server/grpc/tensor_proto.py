"""TensorProto <-> NumPy, as TensorFlow's C++ `Tensor` reads and writes them.

Reading (`to_ndarray`) follows `Tensor::FromProto`, which is what TF Serving runs on every gRPC input:
- the shape is `tensor_shape.dim` (`unknown_rank` is ignored, as TensorShape ignores it); a negative
  dimension, more than 254 dimensions or an element count past int64 is an error;
- an empty tensor (0 elements) is empty whatever the proto carries (refused when NumPy cannot make an
  array of its shape, e.g. [0, 2**63 - 1]);
- `tensor_content` wins over the typed fields: the raw little-endian bytes, exactly elements x item size
  (read with `np.frombuffer`, no copy); for DT_STRING the varint lengths then the bytes;
- otherwise the typed field (`float_val`, `int_val`, `half_val`, ...): more values than elements are cut,
  fewer are padded with the last value, none gives zeros (empty strings); narrow integer types keep the
  low bits of an `int_val` entry, as the C++ cast does;
- DT_RESOURCE, DT_VARIANT, reference types and unknown enums are refused;
- a valid shape of more than 64 dimensions (TensorFlow allows 254) is refused: NumPy holds at most 64.
`tf.make_ndarray` agrees wherever it does not fail (it fails on too many values).

Writing (`write`) follows `Tensor::AsProtoField` (TF Serving's default for PredictResponse outputs):
every element in the dtype's typed field, float16/bfloat16 bits in `half_val`, strings in `string_val`;
or, with `content=True`, `Tensor::AsProtoTensorContent` (TF Serving's
--enable_serialization_as_tensor_content): raw bytes in `tensor_content`, strings as a varint-length list.
Packed numeric fields are written as protobuf wire bytes built with NumPy (one parse, no Python loop).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

MAX_DIMS = 254  # TensorShape::MaxDimensions()
NUMPY_MAX_DIMS = 64  # the most dimensions a NumPy array may have (NPY_MAXDIMS in NumPy 2)
_INT64_MAX = (1 << 63) - 1


class TensorProtoError(ValueError):
    """A TensorProto that TensorFlow could not turn into a tensor (or an array with no TF dtype)."""


@dataclass(frozen=True)
class _Type:
    enum: int
    dtype: np.dtype        # the array's dtype
    field: str             # the typed field AsProtoField writes and FromProto reads
    base: np.dtype         # the plain dtype the field's values are converted through


def _t(enum, dtype, field, base=None):
    dtype = np.dtype(dtype)
    return _Type(enum, dtype, field, np.dtype(base) if base is not None else dtype)


# TensorFlow's own numpy spellings of the quantized types (tf.qint8.as_numpy_dtype, ...).
_QINT8 = np.dtype([("qint8", np.int8)])
_QUINT8 = np.dtype([("quint8", np.uint8)])
_QINT16 = np.dtype([("qint16", np.int16)])
_QUINT16 = np.dtype([("quint16", np.uint16)])
_QINT32 = np.dtype([("qint32", np.int32)])

_TYPES = [
    _t(types_pb2.DT_FLOAT, np.float32, "float_val"),
    _t(types_pb2.DT_DOUBLE, np.float64, "double_val"),
    _t(types_pb2.DT_INT32, np.int32, "int_val"),
    _t(types_pb2.DT_UINT8, np.uint8, "int_val"),
    _t(types_pb2.DT_INT16, np.int16, "int_val"),
    _t(types_pb2.DT_INT8, np.int8, "int_val"),
    _t(types_pb2.DT_STRING, object, "string_val"),
    _t(types_pb2.DT_COMPLEX64, np.complex64, "scomplex_val", np.float32),
    _t(types_pb2.DT_INT64, np.int64, "int64_val"),
    _t(types_pb2.DT_BOOL, np.bool_, "bool_val"),
    _t(types_pb2.DT_QINT8, _QINT8, "int_val", np.int8),
    _t(types_pb2.DT_QUINT8, _QUINT8, "int_val", np.uint8),
    _t(types_pb2.DT_QINT32, _QINT32, "int_val", np.int32),
    _t(types_pb2.DT_BFLOAT16, ml_dtypes.bfloat16, "half_val", np.uint16),
    _t(types_pb2.DT_QINT16, _QINT16, "int_val", np.int16),
    _t(types_pb2.DT_QUINT16, _QUINT16, "int_val", np.uint16),
    _t(types_pb2.DT_UINT16, np.uint16, "int_val"),
    _t(types_pb2.DT_COMPLEX128, np.complex128, "dcomplex_val", np.float64),
    _t(types_pb2.DT_HALF, np.float16, "half_val", np.uint16),
    _t(types_pb2.DT_UINT32, np.uint32, "uint32_val"),
    _t(types_pb2.DT_UINT64, np.uint64, "uint64_val"),
    _t(types_pb2.DT_FLOAT8_E5M2, ml_dtypes.float8_e5m2, "float8_val", np.uint8),
    _t(types_pb2.DT_FLOAT8_E4M3FN, ml_dtypes.float8_e4m3fn, "float8_val", np.uint8),
    _t(types_pb2.DT_FLOAT8_E4M3FNUZ, ml_dtypes.float8_e4m3fnuz, "float8_val", np.uint8),
    _t(types_pb2.DT_FLOAT8_E4M3B11FNUZ, ml_dtypes.float8_e4m3b11fnuz, "float8_val", np.uint8),
    _t(types_pb2.DT_FLOAT8_E5M2FNUZ, ml_dtypes.float8_e5m2fnuz, "float8_val", np.uint8),
    _t(types_pb2.DT_INT4, ml_dtypes.int4, "int_val", np.int8),
    _t(types_pb2.DT_UINT4, ml_dtypes.uint4, "int_val", np.uint8),
]
BY_ENUM: dict[int, _Type] = {t.enum: t for t in _TYPES}
_BY_DTYPE: dict[np.dtype, _Type] = {t.dtype: t for t in _TYPES}

# TensorProto field numbers and their wire encoding, for writing packed repeated fields as bytes.
_RAW = {"float_val": (5, "<f4"), "double_val": (6, "<f8"), "scomplex_val": (9, "<f4"),
        "dcomplex_val": (12, "<f8")}
_VARINT = {"int_val": 7, "int64_val": 10, "bool_val": 11, "half_val": 13, "uint32_val": 16,
           "uint64_val": 17}
_FLOAT8_FIELD = 18


def dtype_enum(dtype: np.dtype) -> int:
    """The DataType of a numpy dtype (bytes/str/object arrays are DT_STRING); TensorProtoError if none."""
    dtype = np.dtype(dtype)
    t = _BY_DTYPE.get(dtype)
    if t is not None:
        return t.enum
    if dtype.kind in "SU":
        return types_pb2.DT_STRING
    raise TensorProtoError(f"no TensorFlow dtype for numpy dtype {dtype}")


# ---------------------------------------------------------------------------------------------
# TensorProto -> ndarray
# ---------------------------------------------------------------------------------------------

def shape_of(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The tensor's shape, checked as TensorShape::IsValid checks it."""
    dims = tuple(d.size for d in proto.tensor_shape.dim)
    if len(dims) > MAX_DIMS:
        raise TensorProtoError(f"shape has {len(dims)} dimensions, more than {MAX_DIMS}")
    count = 1
    for d in dims:
        if d < 0:
            raise TensorProtoError(f"shape has a negative dimension: {list(dims)}")
        count *= d
        if count > _INT64_MAX:
            raise TensorProtoError(f"shape has more elements than an int64 can count: {list(dims)}")
    return dims


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The array a TensorProto holds (see the module's docstring); raises TensorProtoError."""
    t = BY_ENUM.get(proto.dtype)
    if t is None:
        name = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() else proto.dtype
        raise TensorProtoError(f"tensors of type {name} are not accepted")
    shape = shape_of(proto)
    if len(shape) > NUMPY_MAX_DIMS:
        raise TensorProtoError(f"shape has {len(shape)} dimensions; at most {NUMPY_MAX_DIMS} are supported here")
    n = math.prod(shape)
    try:
        if n == 0:
            return np.empty(shape, t.dtype)
        content = proto.tensor_content
        if content:
            flat = _from_content(content, t, n)
        else:
            flat = _from_field(proto, t, n)
        return flat.reshape(shape)
    except MemoryError:
        raise TensorProtoError(f"no memory for a tensor of shape {list(shape)}") from None
    except ValueError as e:  # e.g. an empty shape such as [0, 2**63 - 1]: valid for TensorFlow, too big for NumPy
        raise TensorProtoError(f"NumPy cannot hold a tensor of shape {list(shape)}: {e}") from None


def _from_content(content: bytes, t: _Type, n: int) -> np.ndarray:
    if t.enum == types_pb2.DT_STRING:
        return _decode_string_list(content, n)
    if len(content) != t.dtype.itemsize * n:
        raise TensorProtoError(f"tensor_content has {len(content)} bytes, {t.dtype.itemsize * n} expected "
                               f"for {n} elements")
    if t.dtype.kind in "biufc":  # NumPy's own numeric types: read as little-endian
        return np.frombuffer(content, t.dtype.newbyteorder("<"))
    return np.frombuffer(content, t.dtype)  # one-byte or two-byte ml_dtypes/quantized types


def _from_field(proto, t: _Type, n: int) -> np.ndarray:
    field = t.field
    if field == "string_val":
        strings = list(proto.string_val)
        have = len(strings)
        if have >= n:
            out = np.empty(n, object)
            out[:] = strings[:n]
            return out
        out = np.empty(n, object)
        out[:have] = strings
        out[have:] = strings[-1] if strings else b""
        return out
    if field == "float8_val":
        values = np.frombuffer(proto.float8_val, np.uint8)
    else:
        values = np.asarray(getattr(proto, field))
        if field in ("scomplex_val", "dcomplex_val"):
            values = values.astype(t.base, copy=False)
            values = values[: values.size // 2 * 2]
            values = values.view(t.dtype)
    have = values.size
    if have == 0:
        return np.zeros(n, t.dtype)
    if values.dtype != t.dtype:
        values = values.astype(t.base, copy=False)  # C++'s narrowing casts keep the low bits
        if t.base != t.dtype:
            values = values.view(t.dtype)
    if have >= n:
        return values[:n]
    out = np.empty(n, t.dtype)
    out[:have] = values
    out[have:] = values[-1]
    return out


def _decode_string_list(content: bytes, n: int) -> np.ndarray:
    """TensorFlow's string list encoding: n varint32 lengths, then the bytes one after another.

    The lengths are read with NumPy (no Python loop over the bytes); n is at most len(content), as each
    length takes at least one byte, so the only Python-level work is one slice per string."""
    if n > len(content):
        raise TensorProtoError("tensor_content is not a string list")
    head = np.frombuffer(content, np.uint8, count=min(len(content), 5 * n))
    ends = np.flatnonzero(head < 0x80)[:n]          # the last byte of each length
    if ends.size < n:
        raise TensorProtoError("tensor_content is not a string list")
    starts = np.empty(n, np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    widths = ends - starts + 1
    if widths.max() > 5:
        raise TensorProtoError("tensor_content is not a string list")
    lengths = np.zeros(n, np.int64)
    for k in range(int(widths.max())):           # at most 5 passes over the n lengths
        has = widths > k
        lengths[has] |= (head[starts[has] + k].astype(np.int64) & 0x7F) << (7 * k)
    if (lengths >= 2**32).any():
        raise TensorProtoError("tensor_content is not a string list")
    pos = int(ends[-1]) + 1
    if int(lengths.sum()) != len(content) - pos:
        raise TensorProtoError("tensor_content is not a string list of the tensor's size")
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = pos
    np.cumsum(lengths, out=offsets[1:])
    offsets[1:] += pos
    bounds = offsets.tolist()
    out = np.empty(n, object)
    out[:] = [content[a:b] for a, b in zip(bounds, bounds[1:])]
    return out


# ---------------------------------------------------------------------------------------------
# ndarray -> TensorProto
# ---------------------------------------------------------------------------------------------

def from_ndarray(array, content: bool = False) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto()
    write(array, proto, content)
    return proto


def write(array, proto: tensor_pb2.TensorProto, content: bool = False) -> None:
    """Fill `proto` (e.g. `response.outputs[key]`, in place) with `array`, as AsProtoField writes it, or as
    AsProtoTensorContent with `content=True`. Raises TensorProtoError for a dtype TensorFlow has not."""
    arr = np.asarray(array)
    enum = dtype_enum(arr.dtype)
    proto.Clear()
    proto.dtype = enum
    shape = proto.tensor_shape
    shape.SetInParent()
    for d in arr.shape:
        shape.dim.add().size = d
    if arr.size == 0:
        return
    flat = np.ascontiguousarray(arr).reshape(-1)
    if enum == types_pb2.DT_STRING:
        strings = [_to_bytes(v) for v in flat.tolist()]
        if content:
            proto.tensor_content = _encode_string_list(strings)
        else:
            proto.string_val.extend(strings)
        return
    t = BY_ENUM[enum]
    if content:
        if t.dtype.kind in "biufc":
            flat = flat.astype(t.dtype.newbyteorder("<"), copy=False)
        proto.tensor_content = flat.tobytes()
        return
    field = t.field
    if field in _RAW:
        number, wire = _RAW[field]
        payload = (flat.view(t.base) if t.base != t.dtype else flat).astype(wire, copy=False)
        proto.MergeFromString(_packed(number, payload.tobytes()))
    elif field == "float8_val":
        data = flat.view(np.uint8).tobytes()
        proto.MergeFromString(_tag(_FLOAT8_FIELD, 2) + _varint(len(data)) + data)
    else:
        values = flat.view(t.base) if t.base != t.dtype else flat
        if field == "half_val" or values.dtype.kind == "b":
            values = values.astype(np.uint64)
        elif values.dtype.kind == "i":  # negative int32/int64 are ten-byte varints (sign-extended)
            values = values.astype(np.int64, copy=False).view(np.uint64)
        else:
            values = values.astype(np.uint64, copy=False)
        proto.MergeFromString(_packed(_VARINT[field], _varints(values)))


def _to_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview, np.bytes_)):
        return bytes(value)
    raise TensorProtoError(f"a string tensor holds a {type(value).__name__}, not bytes")


def _encode_string_list(strings: list[bytes]) -> bytes:
    return b"".join(_varint(len(s)) for s in strings) + b"".join(strings)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _packed(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def _varints(values: np.ndarray) -> bytes:
    """Protobuf varints of a uint64 array, all at once: 7 bits a byte, low groups first, high bit = more."""
    if values.size == 0:
        return b""
    top = int(values.max())
    if top < 0x80:
        return values.astype(np.uint8).tobytes()
    groups = (top.bit_length() + 6) // 7
    shifts = np.arange(0, 7 * groups, 7, dtype=np.uint64)
    parts = (values[:, None] >> shifts) & np.uint64(0x7F)          # [n, groups]
    length = 1 + ((values[:, None] >> shifts[1:]) != 0).sum(axis=1)  # bytes each value needs
    index = np.arange(groups)
    more = index[None, :] < (length - 1)[:, None]
    parts |= more.astype(np.uint64) << np.uint64(7)
    return parts.astype(np.uint8)[index[None, :] < length[:, None]].tobytes()
