"""Warm-up: replay a version's recorded requests before it becomes AVAILABLE.

TF Serving's format (servables/tensorflow/saved_model_warmup_util.cc): the file
`<version>/assets.extra/tf_serving_warmup_requests` is a TFRecord of `PredictionLog` protos.
Each record is replayed `num_request_iterations` times (default 1), at most 1000 records are
allowed, and any failure fails the load of that version. No file: nothing to do. Predict, classify,
regress and multi_inference records are replayed (a multi_inference record runs each of its tasks);
the request's model name and version are not read (except that multi_inference's tasks must name one
model, as TF Serving checks).
"""
from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from .errors import ServingError
from .signatures import DEFAULT_SIGNATURE
from .tf_example import multi_inference_tasks, serialize_input

log = logging.getLogger("server.lifecycle")

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000


def warmup_path(version_path: str) -> str:
    return os.path.join(version_path, WARMUP_FILE)


def run_warmup(servable, num_request_iterations: int = 1, batcher_for=None) -> int:
    """Replay the servable's warm-up file; returns the number of records. Raises ServingError.

    With `batcher_for` (batching.BatcherPool.batcher_for), records run through the version's batchers, as
    requests will (TF Serving warms its batching session up the same way), so those are warm too."""
    path = warmup_path(servable.path)
    if not os.path.exists(path):
        return 0
    count = 0
    for record in _records(path):
        count += 1
        if count > MAX_RECORDS:
            raise ServingError("INVALID_ARGUMENT",
                               f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(record)
        except Exception:  # protobuf's DecodeError
            raise ServingError("INVALID_ARGUMENT",
                               f"Failed to parse warmup record {count} from {path}") from None
        runs = _request(servable, entry)
        batchers = [batcher_for(servable, signature) if batcher_for is not None else None for signature, _ in runs]
        for _ in range(num_request_iterations):
            for (signature, inputs), batcher in zip(runs, batchers):
                if batcher is not None:
                    batcher(inputs)
                else:
                    servable.run(signature, inputs)
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d.",
             path, count)
    return count


def _records(path: str):
    try:
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise ServingError("DATA_LOSS", f"{e.message}. Please verify your warmup data is in "
                                        "TFRecord format.") from None


def _request(servable, entry: prediction_log_pb2.PredictionLog) -> list:
    """The runs [(signature, inputs), ...] a PredictionLog asks for: one, or one per multi_inference task."""
    kind = entry.WhichOneof("log_type")
    if kind == "predict_log":
        request = entry.predict_log.request
        signature = servable.get_signature(request.model_spec.signature_name or DEFAULT_SIGNATURE)
        inputs = {}
        for key, tensor in request.inputs.items():
            if key not in signature.inputs:
                raise ServingError("INVALID_ARGUMENT",
                                   f"warm-up request: signature {signature.name} does not have "
                                   f"named input: {key}")
            inputs[key] = tf.make_ndarray(tensor)
        return [(signature, inputs)]
    if kind in ("classify_log", "regress_log"):
        request = getattr(entry, kind).request
        return [_examples_run(servable, request.model_spec.signature_name, request.input, kind)]
    if kind == "multi_inference_log":
        return _multi_inference(servable, entry.multi_inference_log.request)
    raise ServingError("UNIMPLEMENTED", f"Unsupported log_type for warmup: {kind}")


def _examples_run(servable, signature_name: str, input_proto, what: str):
    signature = servable.get_signature(signature_name or DEFAULT_SIGNATURE)
    if len(signature.inputs) != 1:
        raise ServingError("INVALID_ARGUMENT",
                           f"warm-up {what}: signature {signature.name} must have exactly "
                           "one input for serialized examples")
    key = next(iter(signature.inputs))
    return signature, {key: np.array(serialize_input(input_proto).merged(), dtype=object)}


def _multi_inference(servable, request) -> list:
    """A MultiInferenceRequest's tasks, after TF Serving's checks of them (tf_example.multi_inference_tasks)."""
    return [_examples_run(servable, signature_name, request.input, "multi_inference_log")
            for signature_name, _ in multi_inference_tasks(request.tasks, servable.signatures)]
