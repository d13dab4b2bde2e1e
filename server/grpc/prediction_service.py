"""tensorflow.serving.PredictionService over the DataPlane, with the official generated stubs.

Requests are decoded here (TensorProto -> numpy, tensorflow.serving.Input -> serialized tf.Examples), the
DataPlane resolves, validates and runs, and the answer is encoded as TF Serving encodes it. Checks that
TF Serving makes in its gRPC path before the core's are made here, in its order and with its messages
(prediction_service_impl.cc, predict_util.cc, classifier.cc, regressor.cc, multi_inference.cc,
multi_inference_helper.cc, get_model_metadata_impl.cc, server_core.cc).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from .. import dataplane as dp
from .. import tf_example
from ..errors import ServingError, invalid_argument
from ..signatures import Signature
from ..validation import check_dtype
from . import tensor_proto
from .calls import Call

SIGNATURE_DEF = "signature_def"  # the only GetModelMetadataRequest.metadata_field TF Serving serves


# ---------------------------------------------------------------------------------------------
# ModelSpec
# ---------------------------------------------------------------------------------------------

def model_spec(request) -> dp.ModelSpec:
    """The request's tensorflow.serving.ModelSpec as the core's: "Missing ModelSpec" without one,
    "ModelSpec has no name specified." without a name (ServerCore::ServableRequestFromModelSpec)."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    return spec_from_proto(request.model_spec)


def spec_from_proto(spec) -> dp.ModelSpec:
    if not spec.name:
        raise invalid_argument("ModelSpec has no name specified.")
    which = spec.WhichOneof("version_choice")
    return dp.ModelSpec(
        name=spec.name,
        version=spec.version.value if which == "version" else None,
        label=spec.version_label if which == "version_label" else None,
        signature_name=spec.signature_name,
    )


def fill_model_spec(out, result: dp.Result) -> None:
    """The model spec of a response: name, the version that answered, the signature that ran (MakeModelSpec)."""
    out.name = result.name
    out.version.value = result.version
    out.signature_name = result.signature_name


# ---------------------------------------------------------------------------------------------
# Predict
# ---------------------------------------------------------------------------------------------

def predict(plane: dp.DataPlane, request: predict_pb2.PredictRequest,
            content: bool = False, timeout_s: float | None = None) -> predict_pb2.PredictResponse:
    spec = model_spec(request)

    def decode(signature: Signature) -> dict[str, np.ndarray]:
        return decode_inputs(request.inputs, signature, plane.check_elements)

    result = plane.predict(spec, decode, output_filter=tuple(request.output_filter), timeout_s=timeout_s)
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, result)
    outputs = response.outputs
    for key in sorted(result.outputs):
        try:
            tensor_proto.write(result.outputs[key], outputs[key], content)
        except tensor_proto.TensorProtoError as exc:
            raise ServingError("INTERNAL", f"output {key}: {exc}") from None
    return response


_UNREAD = np.empty(0, np.float32)  # stands for an input not decoded because the request's keys are wrong


def decode_inputs(inputs, signature: Signature, check_elements=None) -> dict[str, np.ndarray]:
    """The request's TensorProtos as arrays; "tensor parsing error: <alias>" for one TensorFlow cannot read.

    As TF Serving, a request whose input keys do not match the signature is refused for that first
    (the core's "input size does not match signature"), before any tensor is parsed.
    `check_elements(count)` (DataPlane.check_elements) is called with the element count the shapes
    declare before any tensor is decoded: a few bytes of TensorProto may declare billions of elements.
    """
    declared = signature.inputs
    sent = inputs.keys()
    if any(k not in declared for k in sent) or any(k not in sent and k not in _defaults(signature) for k in declared):
        return {k: _UNREAD for k in sent}
    if check_elements is not None:
        total = 0
        for proto in inputs.values():
            try:
                total += math.prod(tensor_proto.shape_of(proto))
            except tensor_proto.TensorProtoError:
                pass  # refused as "tensor parsing error" below, in the aliases' order
        check_elements(total)
    out = {}
    for alias in sorted(sent):
        rank = len(inputs[alias].tensor_shape.dim)
        if tensor_proto.NUMPY_MAX_DIMS < rank <= tensor_proto.MAX_DIMS:
            # TensorFlow would read it; this server cannot hold it (no model takes such a tensor anyway).
            raise invalid_argument(f"input tensor {alias} has {rank} dimensions; this server supports at most "
                                   f"{tensor_proto.NUMPY_MAX_DIMS}")
        proto = inputs[alias]
        if proto.dtype == types_pb2.DT_STRING:
            # Strings cost a Python object each: refuse a string tensor the signature does not take
            # before decoding it (validation's message, on a stand-in of the declared shape).
            try:
                shape = tensor_proto.shape_of(proto)
            except tensor_proto.TensorProtoError:
                raise invalid_argument(f"tensor parsing error: {alias}") from None
            if len(shape) <= tensor_proto.NUMPY_MAX_DIMS:
                check_dtype(alias, np.broadcast_to(np.empty((), object), shape), declared[alias])
        try:
            out[alias] = tensor_proto.to_ndarray(proto)
        except tensor_proto.TensorProtoError:
            raise invalid_argument(f"tensor parsing error: {alias}") from None
    return out


def _defaults(signature: Signature):
    proto = signature.proto
    return proto.defaults if proto is not None and hasattr(proto, "defaults") else ()


# ---------------------------------------------------------------------------------------------
# Classify, Regress, MultiInference
# ---------------------------------------------------------------------------------------------

class LazyExamples(Sequence):
    """The request's examples, serialized when the core first asks for them: after it has resolved the
    model and checked the signature, where TF Serving serializes them ("Input is empty." comes after
    "Servable not found" and the signature checks, as there)."""

    def __init__(self, input_proto):
        self._input = input_proto
        self._items: tf_example.Examples | None = None

    def _get(self) -> tf_example.Examples:
        if self._items is None:
            self._items = tf_example.serialize_input(self._input)
        return self._items

    @property
    def copied_size(self) -> int:
        return self._get().copied_size

    def merged(self) -> list[bytes]:
        return self._get().merged()

    def parts(self) -> tuple[list[bytes], bytes | None]:
        return self._get().parts()

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, i):
        return self._get()[i]

    def __iter__(self):
        return iter(self._get())


def classify(plane: dp.DataPlane, request: classification_pb2.ClassificationRequest,
             examples=None, timeout_s: float | None = None) -> classification_pb2.ClassificationResponse:
    spec = model_spec(request)
    result = plane.classify(spec, examples if examples is not None else LazyExamples(request.input), timeout_s)
    response = classification_pb2.ClassificationResponse()
    fill_model_spec(response.model_spec, result)
    fill_classifications(response.result, result.outputs)
    return response


def fill_classifications(out: classification_pb2.ClassificationResult, outputs: dict[str, np.ndarray]) -> None:
    """ClassificationResult from "classes" [batch, n] (strings) and/or "scores" [batch, n] (floats)."""
    classes = outputs.get(tf_example.CLASSES)
    scores = outputs.get(tf_example.SCORES)
    shaped = classes if classes is not None else outputs[tf_example.SCORES]  # checked: one of them is there
    batch, n = shaped.shape
    labels = [[_label(v) for v in row] for row in classes.tolist()] if classes is not None else None
    values = scores.tolist() if scores is not None else None
    for i in range(batch):
        classifications = out.classifications.add()
        for j in range(n):
            cls = classifications.classes.add()
            if labels is not None:
                cls.label = labels[i][j]
            if values is not None:
                cls.score = values[i][j]


def _label(value) -> str:
    # TF Serving copies the bytes into a proto string; Python's protobuf needs text, so invalid UTF-8
    # is replaced rather than refused.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def regress(plane: dp.DataPlane, request: regression_pb2.RegressionRequest,
            examples=None, timeout_s: float | None = None) -> regression_pb2.RegressionResponse:
    spec = model_spec(request)
    result = plane.regress(spec, examples if examples is not None else LazyExamples(request.input), timeout_s)
    response = regression_pb2.RegressionResponse()
    fill_model_spec(response.model_spec, result)
    fill_regressions(response.result, result.outputs)
    return response


def fill_regressions(out: regression_pb2.RegressionResult, outputs: dict[str, np.ndarray]) -> None:
    for value in np.asarray(outputs[tf_example.REGRESS_OUTPUTS]).reshape(-1).tolist():
        out.regressions.add().value = value


def multi_inference(plane: dp.DataPlane, request: inference_pb2.MultiInferenceRequest,
                    timeout_s: float | None = None) -> inference_pb2.MultiInferenceResponse:
    """Several classify/regress tasks of one model over one Input, on one version (multi_inference.cc).

    The version is chosen by the first task's ModelSpec and every task runs on it; the tasks are checked
    all together before any runs, with TF Serving's messages.
    """
    first = request.tasks[0].model_spec if request.tasks and request.tasks[0].HasField("model_spec") else None
    if first is None:
        raise invalid_argument("ModelSpec has no name specified.")
    metadata = plane.model_metadata(spec_from_proto(first))  # resolves the version, as GetServableHandle
    version = metadata.model_spec.version.value
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata[SIGNATURE_DEF].Unpack(signature_defs)

    for signature_name, method in tf_example.multi_inference_tasks(request.tasks, signature_defs.signature_def):
        signature = Signature.from_proto(signature_name, signature_defs.signature_def[signature_name])
        check_signature, _ = tf_example.CHECKS[method]
        check_signature(signature)

    tasks = [(task.method_name, task.model_spec.signature_name) for task in request.tasks]
    results = plane.multi_inference(first.name, version, tasks, LazyExamples(request.input), timeout_s)
    response = inference_pb2.MultiInferenceResponse()
    for (method, _), result in zip(tasks, results):
        out = response.results.add()
        if method == tf_example.CLASSIFY_METHOD:
            fill_classifications(out.classification_result, result.outputs)
        else:
            fill_regressions(out.regression_result, result.outputs)
        fill_model_spec(out.model_spec, result)
    return response


# ---------------------------------------------------------------------------------------------
# GetModelMetadata
# ---------------------------------------------------------------------------------------------

def model_metadata(plane: dp.DataPlane, request: get_model_metadata_pb2.GetModelMetadataRequest
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise invalid_argument(f"Metadata field {field} is not supported")
    return plane.model_metadata(spec_from_proto(request.model_spec))


# ---------------------------------------------------------------------------------------------
# The servicer
# ---------------------------------------------------------------------------------------------

class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`content`: write Predict outputs as tensor_content (--enable_serialization_as_tensor_content).

    A call's deadline, when the client set one, is its time limit: as TF Serving sets the remaining time as
    the run's timeout, here it bounds the time the request waits for its batch (DEADLINE_EXCEEDED past it).
    """

    def __init__(self, plane: dp.DataPlane, metrics=None, content: bool = False):
        self.plane = plane
        self.content = content
        self.call = Call(metrics)

    def Predict(self, request, context):
        return self.call(context, "Predict", request.model_spec.name, predict, self.plane, request, self.content,
                         context.time_remaining())

    def Classify(self, request, context):
        return self.call(context, "Classify", request.model_spec.name, classify, self.plane, request, None,
                         context.time_remaining())

    def Regress(self, request, context):
        return self.call(context, "Regress", request.model_spec.name, regress, self.plane, request, None,
                         context.time_remaining())

    def MultiInference(self, request, context):
        return self.call(context, None, "", multi_inference, self.plane, request, context.time_remaining())

    def GetModelMetadata(self, request, context):
        return self.call(context, None, request.model_spec.name, model_metadata, self.plane, request)
