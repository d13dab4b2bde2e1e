"""The core that REST and gRPC share: resolve model/version/signature -> validate -> run -> result.

As TF Serving's predict_util / classification_service / regression_service / get_model_metadata_impl,
apart from any wire format. A front end decodes its request into numpy arrays (or serialized
tf.Examples), calls one method here, and encodes the `Result`:

    rest/handlers.py   JSON bytes  -> DataPlane -> JSON bytes
    grpc/              TensorProto -> DataPlane -> TensorProto

Every failure is a `ServingError` carrying TF Serving's status code from here to the client.
Versions come from the model manager (lifecycle.py): a request holds the version it started on
until it is done, however many versions are published meanwhile.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, Union

import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from . import access_log, tf_example
from . import config as config_mod
from .errors import ServingError, invalid_argument
from .signatures import DEFAULT_SIGNATURE, Signature
from .validation import validate_inputs

SIGNATURE_DEF_FIELD = "signature_def"  # the one metadata field TF Serving serves

Tensors = Mapping[str, np.ndarray]
# What a front end hands to predict: the arrays, or a function that decodes them once the signature
# is known (JSON needs the declared dtypes to read its numbers).
Inputs = Union[Tensors, Callable[[Signature], Tensors]]


DEFAULT_MAX_ELEMENTS = 1 << 26  # --max_request_elements


class RequestLog(Protocol):
    """What the core asks of the request log (request_log.RequestLog), kept apart from it."""

    def sample(self, name: str) -> Any: ...

    def submit(self, kind: str, settings: Any, name: str, version: int | None, signature_name: str,
               inputs: Any, outputs: Any, output_filter: Sequence[str] = (), status: str = "",
               tasks: Sequence[tuple[str, str]] = ()) -> None: ...


@dataclass(frozen=True)
class ModelSpec:
    """Which model, version (or label) and signature a request names (TF Serving's ModelSpec)."""
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @property
    def resolved_signature_name(self) -> str:
        return self.signature_name or DEFAULT_SIGNATURE


@dataclass
class Result:
    """What a model answered, and who answered it: the model, the version and the signature that ran."""
    name: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]
    method_name: str = ""


class DataPlane:
    """predict, classify, regress, model status and metadata, config reload, over a model manager.

    `manager` (lifecycle.ModelManager): `acquire(name, version, label)` is a context manager yielding
    a loaded servable, `status(name, version, label)` a GetModelStatusResponse, `reload_config(models)`.
    `batcher_for(servable, signature)` optionally returns a callable that runs inputs through a dynamic
    batcher (batching/); REST and gRPC requests for the same signature then share batches.
    `max_elements` (--max_request_elements; 0 = no limit) bounds the tensor elements of one predict
    request (summed over its inputs) and the examples of one classify/regress request; the copies of a
    context into its examples may take at most 8 x max_elements bytes (the memory of the largest numeric
    tensor allowed), checked before the context is copied into any example.
    `check_method_name(signature, method)` optionally refuses a signature whose method_name does not
    match the API called (TF Serving's --enable_signature_method_name_check).

    predict, classify and regress take an optional `timeout_s`, the request's time limit (REST:
    --rest_api_timeout_in_ms; gRPC: what is left of the call's deadline); `queue_timeout_s`
    (--batching_queue_timeout_in_ms; None: none) bounds every request as well. The earlier of the two
    bounds the time a request waits for its batch: past it, DEADLINE_EXCEEDED, and a request still
    queued is never run. Without a batcher they change nothing.
    """

    def __init__(self, manager, batcher_for: Callable | None = None,
                 check_method_name: Callable[[Signature, str], None] | None = None,
                 max_elements: int = DEFAULT_MAX_ELEMENTS, queue_timeout_s: float | None = None):
        self.manager = manager
        self._max_elements = max_elements
        self._batcher_for = batcher_for
        self._check_method_name = check_method_name
        self._queue_timeout = queue_timeout_s or None
        self.request_log: RequestLog | None = None   # when a model has a logging_config

    # -- predict ---------------------------------------------------------------------------
    def predict(self, spec: ModelSpec, inputs: Inputs, output_filter: Sequence[str] = (),
                timeout_s: float | None = None) -> Result:
        request_log = self.request_log
        if request_log is None or (settings := request_log.sample(spec.name)) is None:
            return _answered(self._predict(spec, inputs, output_filter, timeout_s))
        read: dict[str, Tensors] = {}

        def decode(signature: Signature) -> Tensors:   # keeps the arrays for the request log
            read["inputs"] = inputs(signature) if callable(inputs) else inputs
            return read["inputs"]
        try:
            result = self._predict(spec, decode, output_filter, timeout_s)
        except Exception as exc:
            _log_failure(request_log, "predict", settings, spec, read.get("inputs"), exc, output_filter)
            raise
        request_log.submit("predict", settings, result.name, result.version, result.signature_name,
                                read.get("inputs"), result.outputs, output_filter)
        return _answered(result)

    def _predict(self, spec: ModelSpec, inputs: Inputs, output_filter: Sequence[str] = (),
                 timeout_s: float | None = None) -> Result:
        signature_name = spec.resolved_signature_name
        with self.manager.acquire(spec.name, spec.version, spec.label) as servable:
            signature = servable.get_signature(signature_name)
            if self._check_method_name is not None:
                self._check_method_name(signature, tf_example.PREDICT_METHOD)
            tensors = inputs(signature) if callable(inputs) else inputs
            self.check_elements(sum(int(np.size(t)) for t in tensors.values()), "tensor elements")
            validate_inputs(tensors, signature)
            wanted = _filtered_outputs(signature, output_filter)
            outputs = self._run(servable, signature, tensors, wanted, timeout_s)
            version = servable.version
        return Result(spec.name, version, signature_name, outputs, signature.method_name)

    def _run(self, servable, signature: Signature, inputs: Tensors,
             wanted: tuple[str, ...] | None = None, timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """Run a signature, through the batcher when there is one for it; `wanted`: only these outputs;
        `timeout_s`: the request's time limit for waiting on the batcher."""
        if self._batcher_for is not None and inputs:
            batcher = self._batcher_for(servable, signature)
            if batcher is not None:
                queue_timeout = self._queue_timeout
                if queue_timeout is not None and (timeout_s is None or queue_timeout < timeout_s):
                    timeout_s = queue_timeout
                outputs = batcher(inputs) if timeout_s is None else batcher(inputs, timeout_s)
                return outputs if wanted is None else {k: outputs[k] for k in wanted}
        if wanted is not None:  # fetch only these, as TF Serving does with an output_filter
            signature = dataclasses.replace(signature, outputs={k: signature.outputs[k] for k in wanted})
        return servable.run(signature, inputs)

    def check_elements(self, count: int, what: str = "tensor elements") -> None:
        """INVALID_ARGUMENT when `count` is past --max_request_elements. Front ends whose requests declare
        shapes (gRPC's TensorProtos) call it before decoding, so that a shape of billions of elements is
        refused before any memory is taken for it."""
        if self._max_elements and count > self._max_elements:
            raise invalid_argument(f"Request has {count} {what}, more than the limit of {self._max_elements} "
                                   "(--max_request_elements)")

    # -- classify / regress ----------------------------------------------------------------
    def classify(self, spec: ModelSpec, examples: Sequence[bytes], timeout_s: float | None = None) -> Result:
        """Serialized tf.Examples through a classification signature; outputs "classes"/"scores"."""
        return self._run_examples(spec, examples, tf_example.CLASSIFY_METHOD, timeout_s)

    def regress(self, spec: ModelSpec, examples: Sequence[bytes], timeout_s: float | None = None) -> Result:
        """Serialized tf.Examples through a regression signature; output "outputs"."""
        return self._run_examples(spec, examples, tf_example.REGRESS_METHOD, timeout_s)

    def _run_examples(self, spec: ModelSpec, examples: Sequence[bytes], method: str,
                      timeout_s: float | None = None) -> Result:
        request_log = self.request_log
        if request_log is None or (settings := request_log.sample(spec.name)) is None:
            return _answered(self._examples(spec, examples, method, timeout_s))
        kind = "classify" if method == tf_example.CLASSIFY_METHOD else "regress"
        try:
            result = self._examples(spec, examples, method, timeout_s)
        except Exception as exc:
            _log_failure(request_log, kind, settings, spec, _read_examples(examples), exc)
            raise
        request_log.submit(kind, settings, result.name, result.version, result.signature_name,
                                _read_examples(examples), result.outputs)
        return _answered(result)

    def _examples(self, spec: ModelSpec, examples: Sequence[bytes], method: str,
                  timeout_s: float | None = None) -> Result:
        """Feed the serialized examples to the signature's one string input (TF Serving's classifier and
        regressor; `method` says which), after TF Serving's checks of the signature, and check what comes back."""
        check_signature, check_outputs = tf_example.CHECKS[method]
        signature_name = spec.resolved_signature_name
        with self.manager.acquire(spec.name, spec.version, spec.label) as servable:
            signature = servable.signatures.get(signature_name)
            if signature is None:
                raise invalid_argument(f"No signature was found with the name: {signature_name}")
            if self._check_method_name is not None:
                self._check_method_name(signature, method)
            key, _ = check_signature(signature)
            self.check_elements(len(examples), "examples")
            # The context is copied into every example only now, and only within the limit.
            merged = tf_example.merge_examples(examples, 8 * self._max_elements)
            batch = np.empty(len(merged), dtype=object)
            batch[:] = merged
            outputs = self._run(servable, signature, {key: batch}, None, timeout_s)
            version = servable.version
        return Result(spec.name, version, signature_name, check_outputs(outputs, len(examples)),
                      signature.method_name)

    def multi_inference(self, name: str, version: int | None, tasks: Sequence[tuple[str, str]],
                        examples: Sequence[bytes], timeout_s: float | None = None) -> list[Result]:
        """Classify/regress tasks ((method_name, signature_name), ...) of one model version over one Input,
        checked by the front end beforehand (grpc/prediction_service.multi_inference). The request log gets
        one record for the request (a MultiInferenceLog, as TF Serving logs it), not one per task."""
        def run() -> list[Result]:
            return [self._examples(ModelSpec(name, version=version, signature_name=signature_name), examples,
                                   method, timeout_s) for method, signature_name in tasks]
        request_log = self.request_log
        if request_log is None or (settings := request_log.sample(name)) is None:
            results = run()
        else:
            named = [(method, signature_name or DEFAULT_SIGNATURE) for method, signature_name in tasks]
            try:
                results = run()
            except Exception as exc:
                request_log.submit("multi_inference", settings, name, version, "", _read_examples(examples), None,
                                   status=_failure_status(exc), tasks=named)
                raise
            request_log.submit("multi_inference", settings, name, results[0].version if results else version, "",
                               _read_examples(examples), [r.outputs for r in results], tasks=named)
        if results:
            _answered(results[0])
        return results

    # -- status, metadata, config ----------------------------------------------------------
    def model_status(self, spec: ModelSpec) -> get_model_status_pb2.GetModelStatusResponse:
        if not spec.name:
            raise invalid_argument("Missing model name in request.")
        return self.manager.status(spec.name, spec.version, spec.label)

    def model_metadata(self, spec: ModelSpec) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """The version's SignatureDefs, packed as TF Serving packs them (metadata["signature_def"])."""
        if not spec.name:
            raise invalid_argument("Missing model name in request.")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        with self.manager.acquire(spec.name, spec.version, spec.label) as servable:
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            for key, signature_def in servable.signature_def_map().items():
                signature_defs.signature_def[key].CopyFrom(signature_def)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
        return response

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Serve what `config` lists, exactly as a re-read --model_config_file would."""
        self.manager.reload_config(config_mod.settings_from_proto(config, check_paths=True))


def _answered(result: Result) -> Result:
    """Tell the access log (of this thread's request) which version and signature answered."""
    access_log.note(result.name, result.version, result.signature_name)
    return result


def _log_failure(request_log: RequestLog, kind: str, settings, spec: ModelSpec, inputs, exc: Exception,
                 output_filter: Sequence[str] = ()) -> None:
    """A failed request's record: what was read of it, no response, its status."""
    request_log.submit(kind, settings, spec.name, spec.version, spec.resolved_signature_name,
                       inputs, None, output_filter, status=_failure_status(exc))


def _failure_status(exc: Exception) -> str:
    """A failed request's status in its log record: "CODE: message"."""
    if isinstance(exc, ServingError):
        return f"{exc.code}: {exc.message}"
    return f"INTERNAL: {type(exc).__name__}: {exc}"


def _read_examples(examples) -> tuple[list[bytes], bytes | None] | None:
    """A request's examples for its log record: (serialized examples, serialized context or None), never
    merged (the merge is what the limits guard against), or None when they cannot be read at all."""
    try:
        parts = getattr(examples, "parts", None)
        return parts() if parts is not None else (list(examples), None)
    except Exception:  # noqa: BLE001 - the request failed on them already
        return None


def _filtered_outputs(signature: Signature, output_filter: Sequence[str]) -> tuple[str, ...] | None:
    """The outputs a PredictRequest.output_filter asks for (TF Serving's checks), None for all."""
    if not output_filter:
        return None
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(f"output tensor alias not found in signature: {alias} Outputs expected to "
                                   f"be in the set {{{','.join(signature.outputs)}}}.")
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return tuple(sorted(seen))
