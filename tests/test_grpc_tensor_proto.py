"""server/grpc/tensor_proto.py against TensorFlow itself.

References: `tf.make_tensor_proto` / `tf.make_ndarray` (what clients call) and `tf.io.parse_tensor` /
`tf.io.serialize_tensor`, which run the C++ `Tensor::FromProto` / `AsProtoTensorContent` that TF Serving
runs on its gRPC inputs and outputs.
"""
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from server.grpc import tensor_proto as tp

# dtype -> the field Tensor::AsProtoField fills (tensorflow/core/framework/tensor.cc: ProtoHelper<T>).
AS_PROTO_FIELD = {
    np.float32: "float_val", np.float64: "double_val", np.int32: "int_val", np.uint8: "int_val",
    np.int16: "int_val", np.int8: "int_val", np.uint16: "int_val", np.int64: "int64_val",
    np.uint32: "uint32_val", np.uint64: "uint64_val", np.bool_: "bool_val", np.complex64: "scomplex_val",
    np.complex128: "dcomplex_val", np.float16: "half_val", ml_dtypes.bfloat16: "half_val",
    ml_dtypes.float8_e5m2: "float8_val", ml_dtypes.float8_e4m3fn: "float8_val", ml_dtypes.int4: "int_val",
    object: "string_val",
}
# Types whose values hypothesis draws as bits of an unsigned integer of the same size.
BITS = {np.float16: np.uint16, ml_dtypes.bfloat16: np.uint16, ml_dtypes.float8_e5m2: np.uint8,
        ml_dtypes.float8_e4m3fn: np.uint8}
NUMERIC = [np.float32, np.float64, np.int32, np.uint8, np.int16, np.int8, np.uint16, np.int64, np.uint32,
           np.uint64, np.bool_, np.complex64, np.complex128]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def arrays(draw, dtype):
    shape = draw(SHAPES)
    if dtype is object:
        values = draw(st.lists(st.binary(max_size=6), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        out = np.empty(int(np.prod(shape)), object)
        out[:] = values
        return out.reshape(shape)
    if dtype in BITS:
        return draw(hnp.arrays(BITS[dtype], shape)).view(dtype)
    if dtype is ml_dtypes.int4:
        return draw(hnp.arrays(np.int8, shape, elements=st.integers(-8, 7))).astype(ml_dtypes.int4)
    return draw(hnp.arrays(np.dtype(dtype), shape))


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values, bit for bit (NaNs included)."""
    if a.shape != b.shape:
        return False
    if a.dtype == object or b.dtype == object:
        return a.dtype == b.dtype and a.ravel().tolist() == b.ravel().tolist()
    if a.dtype == ml_dtypes.int4:  # -1 is 0xff or 0x0f in its byte, depending on who wrote it
        return b.dtype == a.dtype and np.array_equal(a.astype(np.int8), b.astype(np.int8))
    return a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def parse_cc(proto) -> np.ndarray:
    """What TensorFlow's C++ Tensor::FromProto makes of `proto` (through the ParseTensor op)."""
    value = tf.io.parse_tensor(proto.SerializeToString(), tf.as_dtype(proto.dtype)).numpy()
    if isinstance(value, bytes):  # a scalar string
        out = np.empty((), object)
        out[()] = value
        return out
    return np.asarray(value)


ALL = NUMERIC + [object, np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e5m2, ml_dtypes.float8_e4m3fn,
                 ml_dtypes.int4]


@pytest.mark.parametrize("dtype", ALL, ids=lambda d: np.dtype(d).name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_round_trip_and_references(dtype, data):
    arr = data.draw(arrays(dtype))
    for content in (False, True):
        proto = tp.from_ndarray(arr, content=content)
        assert proto.dtype == tf.as_dtype(arr.dtype if dtype is not object else tf.string).as_datatype_enum
        assert same(tp.to_ndarray(proto), arr)
        assert same(parse_cc(proto), arr), "TensorFlow's C++ reads it differently"
        if content and arr.size:
            assert proto.tensor_content and not proto.ListFields()[-1][0].name.endswith("_val")
        if not content and arr.size:
            assert [f.name for f, _ in proto.ListFields()] == ["dtype", "tensor_shape", AS_PROTO_FIELD[dtype]]
        if dtype is object and content and arr.size:
            continue  # tf.make_ndarray cannot read a string tensor_content (neither from TF Serving)
        assert same(tf.make_ndarray(proto), arr), "tf.make_ndarray reads it differently"
    # What a client sends: tf.make_tensor_proto's protos, read as TensorFlow reads them.
    if dtype is not object:
        sent = tf.make_tensor_proto(arr)
        assert same(tp.to_ndarray(sent), parse_cc(sent))
        assert same(tp.to_ndarray(sent), arr)


@pytest.mark.parametrize("dtype", NUMERIC + [np.float16, ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_content_bytes_equal_tensorflow(dtype, data):
    """With content=True the proto is byte for byte what TensorFlow's AsProtoTensorContent writes."""
    arr = data.draw(arrays(dtype))
    ours = tp.from_ndarray(arr, content=True)
    theirs = tensor_pb2.TensorProto.FromString(tf.io.serialize_tensor(tf.constant(arr)).numpy())
    assert ours == theirs


FIELD_VALUES = {
    "float_val": st.floats(width=32, allow_nan=False), "double_val": st.floats(allow_nan=False),
    "int_val": st.integers(-(1 << 31), (1 << 31) - 1), "int64_val": st.integers(-(1 << 63), (1 << 63) - 1),
    "uint32_val": st.integers(0, (1 << 32) - 1), "uint64_val": st.integers(0, (1 << 64) - 1),
    "bool_val": st.booleans(), "half_val": st.integers(-(1 << 31), (1 << 31) - 1),
    "scomplex_val": st.floats(width=32, allow_nan=False), "dcomplex_val": st.floats(allow_nan=False),
    "string_val": st.binary(max_size=4),
}
TYPED = [(types_pb2.DT_FLOAT, "float_val"), (types_pb2.DT_DOUBLE, "double_val"), (types_pb2.DT_INT32, "int_val"),
         (types_pb2.DT_UINT8, "int_val"), (types_pb2.DT_INT16, "int_val"), (types_pb2.DT_INT8, "int_val"),
         (types_pb2.DT_UINT16, "int_val"), (types_pb2.DT_INT64, "int64_val"), (types_pb2.DT_UINT32, "uint32_val"),
         (types_pb2.DT_UINT64, "uint64_val"), (types_pb2.DT_BOOL, "bool_val"), (types_pb2.DT_HALF, "half_val"),
         (types_pb2.DT_BFLOAT16, "half_val"), (types_pb2.DT_COMPLEX64, "scomplex_val"),
         (types_pb2.DT_COMPLEX128, "dcomplex_val"), (types_pb2.DT_STRING, "string_val")]


def make(dtype, dims, **fields):
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **fields)


@pytest.mark.parametrize("dtype,field", TYPED, ids=lambda x: str(x))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_typed_fields_of_any_length_read_as_tensorflow_reads_them(dtype, field, data):
    """A value broadcast to the shape, fewer values padded with the last, more cut, none -> zeros,
    out-of-range int_val entries narrowed: all exactly as Tensor::FromProto."""
    dims = data.draw(st.lists(st.integers(0, 3), max_size=3))
    values = data.draw(st.lists(FIELD_VALUES[field], max_size=8))
    proto = make(dtype, dims, **{field: values})
    assert same(tp.to_ndarray(proto), parse_cc(proto))


def test_scalar_broadcast_as_make_tensor_proto_writes_it():
    proto = tf.make_tensor_proto(7.5, dtype=tf.float32, shape=[2, 3])
    assert list(proto.float_val) == [7.5]
    assert same(tp.to_ndarray(proto), np.full((2, 3), 7.5, np.float32))
    assert same(tp.to_ndarray(tf.make_tensor_proto(b"x", shape=[2])), np.array([b"x", b"x"], object))
    assert same(tp.to_ndarray(tf.make_tensor_proto(3)), np.array(3, np.int32))


def test_tensor_content_is_read_without_a_copy_and_wins_over_typed_fields():
    content = np.arange(6, dtype=np.float32).tobytes()
    proto = make(types_pb2.DT_FLOAT, [2, 3], tensor_content=content, float_val=[9.0])
    arr = tp.to_ndarray(proto)
    assert same(arr, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert not arr.flags.owndata and not arr.flags.writeable  # a view of the request's bytes


def test_string_tensor_content_is_tensorflows_string_list():
    proto = make(types_pb2.DT_STRING, [2], tensor_content=b"\x02\x01abc")
    assert same(tp.to_ndarray(proto), parse_cc(proto))
    assert tp.to_ndarray(proto).tolist() == [b"ab", b"c"]


@pytest.mark.parametrize("proto", [
    make(types_pb2.DT_FLOAT, [2], tensor_content=b"\0" * 12),          # 3 floats for 2 elements
    make(types_pb2.DT_FLOAT, [-1], float_val=[1.0]),                   # negative dimension
    make(types_pb2.DT_FLOAT, [1 << 40, 1 << 40], float_val=[1.0]),     # more elements than int64 counts
    make(types_pb2.DT_FLOAT, [1] * 255, float_val=[1.0]),              # more than 254 dimensions
    make(types_pb2.DT_INVALID, [1], float_val=[1.0]),
    make(types_pb2.DT_STRING, [2], tensor_content=b"\x05ab"),           # lengths past the end
    make(types_pb2.DT_STRING, [1], tensor_content=b"\x01ab"),           # bytes left over
], ids=["content-size", "negative-dim", "overflow", "rank-255", "invalid", "strings-short", "strings-long"])
def test_protos_tensorflow_cannot_parse_are_refused(proto):
    with pytest.raises(tp.TensorProtoError):
        tp.to_ndarray(proto)
    if proto.dtype != types_pb2.DT_INVALID and len(proto.tensor_shape.dim) < 255:
        with pytest.raises(tf.errors.InvalidArgumentError):
            parse_cc(proto)


@pytest.mark.parametrize("rank", [65, 254])
def test_a_valid_shape_past_numpys_64_dimensions_is_refused_not_a_crash(rank):
    # TensorFlow reads it (up to 254 dimensions); NumPy cannot hold it: an error, never a ValueError.
    proto = make(types_pb2.DT_FLOAT, [1] * rank, float_val=[1.0])
    with pytest.raises(tp.TensorProtoError, match=f"shape has {rank} dimensions; at most 64"):
        tp.to_ndarray(proto)
    assert tp.to_ndarray(make(types_pb2.DT_FLOAT, [1] * 64, float_val=[1.0])).shape == (1,) * 64


def test_an_empty_shape_too_big_for_numpy_is_refused_not_a_crash():
    # [0, 2**63 - 1] holds no element and is valid for TensorFlow; NumPy refuses to make it (a ValueError once).
    for dims in ([0, (1 << 63) - 1], [(1 << 62), 0, 4]):
        with pytest.raises(tp.TensorProtoError, match="NumPy cannot hold a tensor of shape"):
            tp.to_ndarray(make(types_pb2.DT_FLOAT, dims, float_val=[1.0]))
    assert tp.to_ndarray(make(types_pb2.DT_FLOAT, [0, 1 << 20], float_val=[1.0])).shape == (0, 1 << 20)


@pytest.mark.parametrize("dtype", [types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, types_pb2.DT_FLOAT_REF, 999])
def test_resource_variant_and_reference_types_are_refused(dtype):
    with pytest.raises(tp.TensorProtoError):
        tp.to_ndarray(make(dtype, [1]))


def test_empty_tensor_ignores_what_the_proto_carries():
    assert same(tp.to_ndarray(make(types_pb2.DT_FLOAT, [0, 3], float_val=[1.0], tensor_content=b"\0" * 4)),
                np.zeros((0, 3), np.float32))
    assert same(tp.to_ndarray(make(types_pb2.DT_STRING, [2, 0])), np.empty((2, 0), object))


def test_unknown_rank_flag_is_ignored_as_tensorflow_ignores_it():
    proto = make(types_pb2.DT_FLOAT, [], float_val=[4.0])
    proto.tensor_shape.unknown_rank = True
    assert same(tp.to_ndarray(proto), parse_cc(proto))


def test_write_fills_a_map_entry_in_place():
    from tensorflow_serving.apis import predict_pb2
    response = predict_pb2.PredictResponse()
    tp.write(np.float32([[1, 2]]), response.outputs["y"])
    tp.write(np.array([b"a"], object), response.outputs["s"])
    assert same(tf.make_ndarray(response.outputs["y"]), np.float32([[1, 2]]))
    assert tf.make_ndarray(response.outputs["s"]).tolist() == [b"a"]


def test_strings_given_as_str_or_fixed_bytes_are_written_as_bytes():
    assert list(tp.from_ndarray(np.array(["é", "b"])).string_val) == ["é".encode(), b"b"]
    assert list(tp.from_ndarray(np.array([b"x", b"yz"])).string_val) == [b"x", b"yz"]
    with pytest.raises(tp.TensorProtoError):
        tp.from_ndarray(np.array([1, None], object))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, (1 << 64) - 1), max_size=20))
def test_varints_equal_protobufs_own(values):
    want = tensor_pb2.TensorProto(uint64_val=values).SerializeToString()
    got = tp._packed(17, tp._varints(np.array(values, dtype=np.uint64))) if values else b""
    assert got == want


def test_a_long_string_list_is_read_in_order():
    strings = [b"", b"a", b"\x00\x80" * 70, b"z" * 300] * 2500
    proto = make(types_pb2.DT_STRING, [len(strings)], tensor_content=tp._encode_string_list(strings))
    assert tp.to_ndarray(proto).tolist() == strings


def test_a_string_tensor_the_signature_does_not_take_is_refused_before_it_is_decoded(monkeypatch):
    """A million strings in one million bytes sent to a float input: the dtype is refused, and no string is
    decoded (a Python object each) to find that out."""
    from tensorflow.core.protobuf import meta_graph_pb2

    from server.errors import ServingError
    from server.grpc import prediction_service
    from server.signatures import Signature

    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    sig.inputs["x"].name, sig.inputs["x"].dtype = "x:0", types_pb2.DT_FLOAT
    sig.inputs["x"].tensor_shape.dim.add(size=-1)
    signature = Signature.from_proto("serving_default", sig)
    n = 1_000_000
    inputs = {"x": make(types_pb2.DT_STRING, [n], tensor_content=b"\x00" * n)}

    def never(proto):
        raise AssertionError("decoded")
    monkeypatch.setattr(tp, "to_ndarray", never)
    with pytest.raises(ServingError) as info:
        prediction_service.decode_inputs(inputs, signature)
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.message.startswith("Input 'x': value of type string is not of expected type: float")
