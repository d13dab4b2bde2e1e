"""The TF Serving API, apart from HTTP: parse -> resolve model/version/signature -> run -> format.

Every method takes what the URL named (model, version or label) and the request body, and returns
the JSON answer as bytes, or raises `ServingError` with TF Serving's status code and message.
The HTTP layer (app.py) only routes and formats errors; a later gRPC layer can call the same methods.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from . import codec, errors, examples
from .signatures import Signature



def _proto_json(message) -> str:
    # TF Serving prints protos with add_whitespace and always_print_primitive_fields.
    return json_format.MessageToJson(
        message, indent=1, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class ServingAPI:
    """predict, classify, regress, model status and metadata over a model manager.

    `manager` resolves models (lifecycle.ModelManager): `acquire(name, version, label)` is a context
    manager yielding a loaded Servable, `status(name, version, label)` a GetModelStatusResponse.
    `batcher_for(servable, signature)` optionally returns a callable that runs inputs through a
    dynamic batcher (batching.py); without it, signatures run directly.
    """

    def __init__(self, manager, batcher_for: Callable | None = None):
        self.manager = manager
        self._batcher_for = batcher_for

    # -- predict ---------------------------------------------------------------------------
    def predict(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        doc = codec.parse_predict(body)  # parse_json, with a numeric tensor held aside unconverted
        signature_name = codec.get_signature_name(doc)
        with self.manager.acquire(name, version, label) as servable:
            signature = servable.get_signature(signature_name)
            inputs, columnar = codec.decode_predict(doc, signature)
            outputs = self._run(servable, signature, inputs)
        return codec.encode_predict(outputs, columnar)

    def _run(self, servable, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._batcher_for is not None and inputs:
            batcher = self._batcher_for(servable, signature)
            if batcher is not None:
                return batcher(inputs)
        return servable.run(signature, inputs)

    # -- classify / regress ----------------------------------------------------------------
    def classify(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        outputs = self._run_examples(name, version, label, body, examples.check_classify_signature,
                                     "classification")
        return examples.encode_classify(outputs)

    def regress(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        outputs = self._run_examples(name, version, label, body, examples.check_regress_signature, "regression")
        return examples.encode_regress(outputs)

    def _run_examples(self, name, version, label, body, check_signature, kind: str) -> dict[str, np.ndarray]:
        """Feed the request's serialized tf.Examples to the signature's one string input (TF Serving's
        classifier/regressor), after TF Serving's checks of the signature."""
        doc = codec.parse_json(body)
        signature_name = codec.get_signature_name(doc)
        serialized = examples.decode_examples(doc)
        with self.manager.acquire(name, version, label) as servable:
            signature = servable.signatures.get(signature_name)
            if signature is None:
                raise errors.invalid_argument(f"No signature was found with the name: {signature_name}")
            key, _ = check_signature(signature)
            batch = np.empty(len(serialized), dtype=object)
            batch[:] = serialized
            outputs = servable.run(signature, {key: batch})
        return examples.check_outputs(outputs, len(serialized), kind)

    # -- status and metadata ---------------------------------------------------------------
    def model_status(self, name: str, version: int | None, label: str | None) -> bytes:
        if not name:
            raise errors.invalid_argument("Missing model name in request.")
        response = self.manager.status(name, version, label)
        return _proto_json(response).encode()

    def model_metadata(self, name: str, version: int | None, label: str | None) -> bytes:
        if not name:
            raise errors.invalid_argument("Missing model name in request.")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        with self.manager.acquire(name, version, label) as servable:
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for key, sig in servable.signature_def_map().items():
                sig_map.signature_def[key].CopyFrom(sig)
        # TF Serving writes the model spec and the unpacked SignatureDefMap and joins them by hand
        # (model_servers/http_rest_api_util.cc: ToJsonString); the same layout here.
        spec = json.loads(_proto_json(response.model_spec))
        spec_text = json.dumps(
            {"name": spec["name"], "signature_name": spec.get("signature_name", ""), "version": spec["version"]},
            indent=1,
        )
        # Signatures sorted by name: the proto map's own order varies from run to run.
        sigs = json.loads(_proto_json(sig_map))
        sigs["signature_def"] = dict(sorted(sigs.get("signature_def", {}).items()))
        return (
            '{\n"model_spec":' + spec_text + ",\n"
            '"metadata": {"signature_def": ' + json.dumps(sigs, indent=1) + "}\n}\n"
        ).encode()
