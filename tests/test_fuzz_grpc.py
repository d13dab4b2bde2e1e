"""Property-based fuzzing of the gRPC API over loopback: no input reaches a Python exception.

Hypothesis builds hostile PredictRequest, ClassificationRequest, RegressionRequest, MultiInferenceRequest,
GetModelMetadataRequest and GetModelStatusRequest messages (TensorProtos whose tensor_content does not
match the shape, negative or huge dimensions, unknown or unaccepted dtypes, typed fields of the wrong type
or count, invalid UTF-8 in string_val, shapes of billions of elements; unknown models, versions and labels,
empty names, absurd output_filter, empty or long example lists, odd features, odd metadata_field values)
and sends them through the official stubs to a real `python -m server`. Every answer must be a gRPC status
other than UNKNOWN, INTERNAL and DEADLINE_EXCEEDED (a hang), or OK with a correct answer (checked against
y = 0.5 x + 2 wherever the request allows it, with `tf.make_ndarray` reading the inputs); the server's log
must hold no traceback.

`make test` runs a short, derandomised pass; FUZZ_EXAMPLES=N runs N examples per property with fresh seeds.
"""
from __future__ import annotations

import collections
import math
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.serverproc import ServerProcess

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES or 200,
    derandomize=not FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# A hang shows as DEADLINE_EXCEEDED; UNKNOWN and INTERNAL are what an uncaught exception becomes.
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
TIMEOUT = 30.0
MAX_ELEMENTS = 100_000  # --max_request_elements: shapes past it are refused before any memory is taken
EXTRA_FLAGS = os.environ.get("FUZZ_GRPC_FLAGS", "").split()

CONFIG = """model_config_list {
  config {
    name: "hp2"
    base_path: "%s"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
  config { name: "hp2cpu" base_path: "%s" model_platform: "tensorflow" }
}
"""
MODELS = ("hp2", "hp2cpu")
SIGNATURES = ("", "serving_default", "regress_x_to_y", "regress_x_to_y2", "classify_x_to_y",
              "regress_x2_to_y3", "classify_x2_to_y3")


@pytest.fixture(scope="module")
def served(testdata, tmp_path_factory):
    config = tmp_path_factory.mktemp("fuzz_grpc") / "models.config"
    config.write_text(CONFIG % (testdata / "saved_model_half_plus_two_2_versions",
                                testdata / "saved_model_half_plus_two_cpu"))
    with ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=0",
                        f"--max_request_elements={MAX_ELEMENTS}", *EXTRA_FLAGS], grpc=True) as s:
        for name in MODELS:
            s.wait_available(name, every_version=True)
        channel = grpc.insecure_channel(s.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)])
        s.predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        s.models = model_service_pb2_grpc.ModelServiceStub(channel)
        s.raw_channel = channel
        s.codes = collections.Counter()
        yield s
        channel.close()
        assert s.proc.poll() is None, "the server died"
        tracebacks = [line for line in s.log_lines() if "Traceback" in line or "unexpected error" in line]
        assert not tracebacks, "the server logged exceptions:\n" + "\n".join(s.log_lines()[-80:])
        print(f"\ngRPC fuzz: {sum(s.codes.values())} requests")
        for kind in sorted({k for k, _ in s.codes}):
            print(f"  {kind}: " + ", ".join(f"{c} {n}" for (k, c), n in sorted(s.codes.items()) if k == kind))


def call(served, method, request):
    """(status code, response or None, details) of one RPC; a status in BAD fails the test."""
    try:
        response = method(request, timeout=TIMEOUT)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        response, code, details = None, e.code(), e.details()
    served.codes[type(request).__name__, code.name] += 1
    assert code not in BAD, f"{code.name}: {details!r} for {type(request).__name__}:\n{str(request)[:2000]}"
    if code is not grpc.StatusCode.OK:
        assert details, f"{code.name} without a message"
    return code, response, details


# ---------------------------------------------------------------- strategies

VALID_DTYPES = sorted(v for v in types_pb2.DataType.values() if v != types_pb2.DT_INVALID)
dtypes = (st.sampled_from([types_pb2.DT_FLOAT] * 6 + [types_pb2.DT_STRING, types_pb2.DT_DOUBLE,
                                                      types_pb2.DT_INT32, types_pb2.DT_HALF])
          | st.sampled_from(VALID_DTYPES + [types_pb2.DT_INVALID])
          | st.integers(-(2**31), 2**31 - 1))

HUGE_DIMS = [-1, -2, -(2**63), 2**63 - 1, 2**31, 2**32 + 1, MAX_ELEMENTS + 1, 1 << 40]
dims = st.integers(0, 4) | st.sampled_from(HUGE_DIMS)
shapes = st.lists(dims, max_size=5) | st.just([1] * 255) | st.just([1] * 254)

invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc", b"a\x00b", b"\xf4\x90\x80\x80"])
binary = st.binary(max_size=16) | invalid_utf8
f32 = st.floats(width=32)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
FIELDS = {
    "float_val": f32, "double_val": st.floats(), "int_val": i32, "int64_val": i64, "uint32_val": u32,
    "uint64_val": u64, "bool_val": st.booleans(), "half_val": i32, "string_val": binary, "scomplex_val": f32,
    "dcomplex_val": st.floats(),
}
counts = st.integers(0, 12) | st.sampled_from([50_000])


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    p = tensor_pb2.TensorProto(dtype=draw(dtypes))
    shape = draw(st.none() | shapes)
    if shape is not None:
        p.tensor_shape.SetInParent()
        for d in shape:
            p.tensor_shape.dim.add(size=d, name=draw(st.sampled_from(["", "batch", "\u00e9"])))
    p.tensor_shape.unknown_rank = draw(st.booleans())
    how = draw(st.sampled_from(["field", "field", "field", "content", "exact_content", "none", "float8", "odd"]))
    if how == "field":
        # Any typed field, whatever the dtype says: the right one, a wrong one, too many or too few values.
        field = draw(st.sampled_from(sorted(FIELDS)))
        n = draw(counts)
        if n > 20:  # many values: one drawn value repeated (drawing 50,000 is slow)
            getattr(p, field).extend([draw(FIELDS[field])] * n)
        else:
            getattr(p, field).extend(draw(st.lists(FIELDS[field], min_size=n, max_size=n)))
    elif how == "content":
        p.tensor_content = draw(st.binary(max_size=64))
    elif how == "exact_content":
        n = math.prod(shape or []) if shape and all(0 <= d <= 4 for d in shape) else 1
        size = draw(st.sampled_from([1, 2, 4, 8, 16]))
        p.tensor_content = draw(st.binary(min_size=n * size, max_size=n * size))
    elif how == "float8":
        p.float8_val = draw(st.binary(max_size=16))
    elif how == "odd":
        kind = draw(st.sampled_from(["variant", "resource", "both_content_and_field"]))
        if kind == "variant":
            p.variant_val.add(type_name=draw(st.text(max_size=8)))
        elif kind == "resource":
            p.resource_handle_val.add(device="/cpu:0", name=draw(st.text(max_size=8)))
        else:
            p.tensor_content = draw(st.binary(max_size=16))
            p.float_val.extend(draw(st.lists(f32, max_size=4)))
    return p


def good_x() -> st.SearchStrategy:
    """A float tensor the model accepts: shape [n] or [n, 1]."""
    return st.builds(lambda xs, col: tf.make_tensor_proto(np.array(xs, np.float32).reshape((-1, 1) if col else -1)),
                     st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=8), st.booleans())


text = st.text(max_size=40) | st.sampled_from(["", " ", "x" * 2000, "\u0000", "../..", "\U0001f600", "%s%n"])
names = st.sampled_from(list(MODELS) * 3 + ["", "nope", "HP2", "hp2 "]) | text
labels = st.sampled_from(["stable", "canary", "", "nope"]) | text
versions = st.sampled_from([123, 124, 0, -1, 1, 2**63 - 1, -(2**63)]) | i64


@st.composite
def model_specs(draw, message):
    spec = message.model_spec
    spec.name = draw(names)
    which = draw(st.sampled_from(["none", "version", "label"]))
    if which == "version":
        spec.version.value = draw(versions)
    elif which == "label":
        spec.version_label = draw(labels)
    spec.signature_name = draw(st.sampled_from(SIGNATURES) | text)


@st.composite
def predict_requests(draw) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    targeted = draw(st.integers(0, 9)) < 6
    if targeted:
        # A model, version and signature that exist, and the one input "x": the tensor itself is what is hostile.
        request.model_spec.name = draw(st.sampled_from(MODELS))
        request.model_spec.signature_name = draw(st.sampled_from(["", "serving_default", "regress_x2_to_y3"]))
        keys = ["x2" if request.model_spec.signature_name == "regress_x2_to_y3" else "x"]
    else:
        if draw(st.integers(0, 9)):
            draw(model_specs(request))
        keys = draw(st.lists(st.sampled_from(["x", "x", "x2", "", "y"]) | text, max_size=3, unique=True))
    for key in keys:
        request.inputs[key].CopyFrom(draw(good_x() if draw(st.integers(0, 4)) == 0 else tensor_protos()))
    if not targeted or draw(st.integers(0, 3)) == 0:
        request.output_filter.extend(draw(st.lists(st.sampled_from(["y", "y", "", "x", "y3", "scores"]) | text,
                                                   max_size=4)))
    return request


@st.composite
def features(draw) -> feature_pb2.Feature:
    kind = draw(st.sampled_from(["float", "float", "int64", "bytes", "none"]))
    f = feature_pb2.Feature()
    if kind == "float":
        f.float_list.value.extend(draw(st.lists(f32, max_size=3)))
    elif kind == "int64":
        f.int64_list.value.extend(draw(st.lists(i64, max_size=3)))
    elif kind == "bytes":
        f.bytes_list.value.extend(draw(st.lists(binary, max_size=3)))
    return f


@st.composite
def examples(draw) -> example_pb2.Example:
    ex = example_pb2.Example()
    for name in draw(st.lists(st.sampled_from(["x", "x", "x2", ""]) | text, max_size=3, unique=True)):
        ex.features.feature[name].CopyFrom(draw(features()))
    return ex


def good_example(x: float) -> example_pb2.Example:
    ex = example_pb2.Example()
    ex.features.feature["x"].float_list.value.append(x)
    return ex


@st.composite
def inputs(draw, message) -> None:
    kind = draw(st.sampled_from(["list", "list", "context", "empty", "empty_list", "many", "good"]))
    inp: input_pb2.Input = message.input
    if kind == "list":
        inp.example_list.examples.extend(draw(st.lists(examples(), max_size=6)))
    elif kind == "context":
        inp.example_list_with_context.examples.extend(draw(st.lists(examples(), max_size=4)))
        if draw(st.booleans()):
            inp.example_list_with_context.context.CopyFrom(draw(examples()))
    elif kind == "empty_list":
        inp.example_list.SetInParent()
    elif kind == "many":
        inp.example_list.examples.extend([draw(examples())] * draw(st.sampled_from([1000, 20_000])))
    elif kind == "good":
        xs = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=6))
        inp.example_list.examples.extend(good_example(x) for x in xs)


@st.composite
def examples_requests(draw, cls):
    request = cls()
    if draw(st.integers(0, 9)) < 6:
        # A model and a signature of the right kind: the examples themselves are what is hostile.
        request.model_spec.name = draw(st.sampled_from(MODELS))
        request.model_spec.signature_name = ("classify_x_to_y" if cls is classification_pb2.ClassificationRequest
                                             else draw(st.sampled_from(["regress_x_to_y", "regress_x_to_y2"])))
    elif draw(st.integers(0, 9)):
        draw(model_specs(request))
    if draw(st.integers(0, 9)):
        draw(inputs(request))
    return request


# ---------------------------------------------------------------- oracles

def _reference_x(proto: tensor_pb2.TensorProto):
    try:
        return tf.make_ndarray(proto)
    except Exception:  # noqa: BLE001 - make_ndarray refuses some protos TensorFlow's C++ reads (too many values)
        return None


def _plain_x_examples(request) -> list[float] | None:
    """The x of each example when every example is exactly {x: [one float]} with no context."""
    if request.input.WhichOneof("kind") != "example_list":
        return None
    xs = []
    for ex in request.input.example_list.examples:
        feature = ex.features.feature
        if list(feature) != ["x"] or feature["x"].WhichOneof("kind") != "float_list" \
                or len(feature["x"].float_list.value) != 1:
            return None
        xs.append(feature["x"].float_list.value[0])
    return xs


def _assert_half_plus_two(y, x):
    expected = np.float32(0.5) * np.asarray(x, np.float32) + np.float32(2)
    np.testing.assert_allclose(np.asarray(y, np.float32).reshape(-1), expected.reshape(-1), rtol=1e-6)


def _served_spec(response_spec, request_spec):
    assert response_spec.name == request_spec.name
    assert response_spec.version.value in (123, 124)


# ---------------------------------------------------------------- properties

@SETTINGS
@given(request=predict_requests())
def test_hostile_predict_requests(served, request):
    code, response, _ = call(served, served.predict.Predict, request)
    if response is None:
        return
    _served_spec(response.model_spec, request.model_spec)
    assert response.model_spec.signature_name in ("serving_default", "regress_x2_to_y3", "classify_x2_to_y3")
    wanted = set(request.output_filter) or set(response.outputs)
    assert set(response.outputs) == wanted and wanted
    if response.model_spec.signature_name == "serving_default" and "y" in response.outputs:
        x = _reference_x(request.inputs["x"])
        y = tf.make_ndarray(response.outputs["y"])
        assert y.shape == tuple(d.size for d in request.inputs["x"].tensor_shape.dim)
        if x is not None:
            _assert_half_plus_two(y, x)


@SETTINGS
@given(request=examples_requests(classification_pb2.ClassificationRequest))
def test_hostile_classification_requests(served, request):
    code, response, _ = call(served, served.predict.Classify, request)
    if response is None:
        return
    _served_spec(response.model_spec, request.model_spec)
    xs = _plain_x_examples(request)
    if xs is not None:
        assert len(response.result.classifications) == len(xs)
        if response.model_spec.signature_name == "classify_x_to_y":
            _assert_half_plus_two([c.classes[0].score for c in response.result.classifications], xs)


@SETTINGS
@given(request=examples_requests(regression_pb2.RegressionRequest))
def test_hostile_regression_requests(served, request):
    code, response, _ = call(served, served.predict.Regress, request)
    if response is None:
        return
    _served_spec(response.model_spec, request.model_spec)
    xs = _plain_x_examples(request)
    if xs is not None:
        assert len(response.result.regressions) == len(xs)
        if response.model_spec.signature_name == "regress_x_to_y":
            _assert_half_plus_two([r.value for r in response.result.regressions], xs)


@SETTINGS
@given(data=st.data())
def test_hostile_metadata_requests(served, data):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    if data.draw(st.booleans()):
        request.model_spec.name = data.draw(st.sampled_from(MODELS))
        request.metadata_field.append("signature_def")
    else:
        if data.draw(st.integers(0, 9)):
            data.draw(model_specs(request))
        request.metadata_field.extend(data.draw(st.lists(st.sampled_from(["signature_def"] * 3 + [""]) | text,
                                                         max_size=3)))
    code, response, _ = call(served, served.predict.GetModelMetadata, request)
    if response is None:
        return
    _served_spec(response.model_spec, request.model_spec)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    assert "serving_default" in signature_defs.signature_def


@SETTINGS
@given(data=st.data())
def test_hostile_status_requests(served, data):
    request = get_model_status_pb2.GetModelStatusRequest()
    if data.draw(st.integers(0, 9)):
        data.draw(model_specs(request))
    code, response, _ = call(served, served.models.GetModelStatus, request)
    if response is None:
        return
    assert request.model_spec.name in MODELS and response.model_version_status
    if request.model_spec.WhichOneof("version_choice") == "version":
        assert [s.version for s in response.model_version_status] == [request.model_spec.version.value]


@SETTINGS
@given(data=st.data())
def test_hostile_multi_inference_requests(served, data):
    request = inference_pb2.MultiInferenceRequest()
    for _ in range(data.draw(st.integers(0, 3))):
        task = request.tasks.add()
        if data.draw(st.integers(0, 9)) < 6:
            # One model, signatures and methods that fit: the input (and repeats) are what is hostile.
            task.model_spec.name = "hp2"
            task.model_spec.signature_name, task.method_name = data.draw(st.sampled_from(
                [("classify_x_to_y", "tensorflow/serving/classify"), ("regress_x_to_y", "tensorflow/serving/regress"),
                 ("regress_x_to_y2", "tensorflow/serving/regress")]))
            continue
        if data.draw(st.integers(0, 9)):
            data.draw(model_specs(task))
        task.method_name = data.draw(st.sampled_from(["tensorflow/serving/classify", "tensorflow/serving/regress",
                                                      "tensorflow/serving/predict", ""]) | text)
    if data.draw(st.integers(0, 2)) == 0:
        xs = data.draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=6))
        request.input.example_list.examples.extend(good_example(x) for x in xs)
    elif data.draw(st.integers(0, 9)):
        data.draw(inputs(request))
    code, response, _ = call(served, served.predict.MultiInference, request)
    if response is None:
        return
    assert len(response.results) == len(request.tasks)
    for task, result in zip(request.tasks, response.results):
        assert result.model_spec.name == task.model_spec.name


# ---------------------------------------------------------------- bytes that are no message at all

RAW_METHODS = {
    "/tensorflow.serving.PredictionService/Predict": predict_pb2.PredictRequest,
    "/tensorflow.serving.PredictionService/Classify": classification_pb2.ClassificationRequest,
    "/tensorflow.serving.PredictionService/Regress": regression_pb2.RegressionRequest,
    "/tensorflow.serving.PredictionService/GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest,
    "/tensorflow.serving.PredictionService/MultiInference": inference_pb2.MultiInferenceRequest,
    "/tensorflow.serving.ModelService/GetModelStatus": get_model_status_pb2.GetModelStatusRequest,
}


def _valid_bytes(cls) -> bytes:
    request = cls()
    spec = request.tasks.add().model_spec if cls is inference_pb2.MultiInferenceRequest else request.model_spec
    spec.name = "hp2"
    return request.SerializeToString()


@st.composite
def raw_bodies(draw) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(RAW_METHODS)))
    valid = _valid_bytes(RAW_METHODS[method])
    kind = draw(st.sampled_from(["random", "bad_utf8_name", "truncated", "flipped"]))
    if kind == "random":
        body = draw(st.binary(max_size=64))
    elif kind == "bad_utf8_name":
        body = valid.replace(b"hp2", draw(st.sampled_from([b"h\xff2", b"\xc3\x28x", b"\xed\xa0\x80"])))
    elif kind == "truncated":
        body = valid[: draw(st.integers(0, len(valid) - 1))]
    else:
        i = draw(st.integers(0, len(valid) - 1))
        body = valid[:i] + bytes([valid[i] ^ draw(st.integers(1, 255))]) + valid[i + 1:]
    return method, body


@SETTINGS
@given(raw=raw_bodies())
def test_bytes_that_are_not_a_request_message(served, raw):
    """What the stubs cannot send: corrupt wire bytes, invalid UTF-8 in a string field. A message that does not
    parse is answered INTERNAL before any handler runs, by grpcio here as by TF Serving's C++ gRPC (which
    answers INTERNAL for a request it cannot parse); the log gets one line, no traceback. Bytes that do parse
    are an ordinary request: never UNKNOWN, INTERNAL or a hang."""
    method, body = raw
    cls = RAW_METHODS[method]
    try:
        cls.FromString(body)
        parses = True
    except Exception:  # noqa: BLE001 - DecodeError, or the parser's RuntimeWarning-free failures
        parses = False
    rpc = served.raw_channel.unary_unary(method)
    try:
        rpc(body, timeout=TIMEOUT)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        code, details = e.code(), e.details()
    served.codes["raw bytes", code.name] += 1
    if parses:
        assert code not in BAD, f"{code.name}: {details!r} for {method} {body!r}"
    else:
        assert (code, details) == (grpc.StatusCode.INTERNAL, "Exception deserializing request!"), body


# ---------------------------------------------------------------- cases found once

def test_a_shape_of_billions_of_elements_is_refused_before_decoding(served):
    """A few bytes declaring 2^40 floats: refused by --max_request_elements from the shape alone (decoding
    it first asked NumPy for 4 TB, and a shape of some gigabytes would have been filled in memory)."""
    for dims in ([1 << 40], [1 << 31], [MAX_ELEMENTS + 1]):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp2"
        x = request.inputs["x"]
        x.dtype = types_pb2.DT_FLOAT
        for d in dims:
            x.tensor_shape.dim.add(size=d)
        x.float_val.append(1.0)
        code, _, details = call(served, served.predict.Predict, request)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert details == (f"Request has {math.prod(dims)} tensor elements, more than the limit of {MAX_ELEMENTS} "
                           "(--max_request_elements)")


def test_a_shape_of_more_dimensions_than_numpy_holds_is_invalid_argument(served):
    """65 to 254 dimensions: valid for TensorFlow, more than a NumPy array holds (once a ValueError -> INTERNAL)."""
    for rank, message in ((65, "input tensor x has 65 dimensions; this server supports at most 64"),
                          (254, "input tensor x has 254 dimensions; this server supports at most 64"),
                          (255, "tensor parsing error: x")):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp2"
        request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0]))
        for _ in range(rank):
            request.inputs["x"].tensor_shape.dim.add(size=1)
        code, _, details = call(served, served.predict.Predict, request)
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_an_empty_shape_too_big_for_numpy_is_invalid_argument(served):
    """[0, 2**63 - 1]: no element, valid for TensorFlow, refused by NumPy (once a ValueError -> INTERNAL)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp2"
    request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0]))
    for d in (0, 2**63 - 1):
        request.inputs["x"].tensor_shape.dim.add(size=d)
    code, _, details = call(served, served.predict.Predict, request)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: x")
