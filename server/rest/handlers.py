"""TF Serving's REST API over the core: JSON bytes in, DataPlane, JSON bytes out.

Every method takes what the URL named (model, version or label) and the request body, and returns
the JSON answer as bytes, or raises `ServingError` with TF Serving's status code and message
(model_servers/http_rest_api_handler.cc). The HTTP layer (rest/app.py) only routes and formats errors.
"""
from __future__ import annotations

import json

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from ..dataplane import SIGNATURE_DEF_FIELD, DataPlane, ModelSpec
from ..errors import SignatureNotFound, invalid_argument
from ..tf_example import Examples
from . import predict_request, predict_response, tf_example_json


def _proto_json(message) -> str:
    # TF Serving prints protos with add_whitespace and always_print_primitive_fields.
    return json_format.MessageToJson(
        message, indent=1, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class RestAPI:
    """predict, classify, regress, model status and metadata: bytes -> DataPlane -> bytes.

    `timeout_ms` (--rest_api_timeout_in_ms; 0: none) is each request's time limit, as in TF Serving;
    here it bounds the time a request waits for its batch (the model run itself is bounded by the
    servable's run options).
    """

    def __init__(self, dataplane: DataPlane, timeout_ms: int = 0):
        self.dataplane = dataplane
        self.timeout_s = timeout_ms / 1000 if timeout_ms > 0 else None

    def predict(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        doc = predict_request.parse_predict(body)  # parse_json, with a numeric tensor held aside unconverted
        spec = ModelSpec(name, version, label, predict_request.get_signature_name(doc))
        columnar = []

        def decode(signature):
            inputs, is_columnar = predict_request.decode_predict(doc, signature)
            columnar.append(is_columnar)
            return inputs

        try:
            result = self.dataplane.predict(spec, decode, timeout_s=self.timeout_s)
        except SignatureNotFound as exc:
            # TF Serving's REST handler looks the signature up itself, before the core, in its own words
            # (http_rest_api_handler.cc); gRPC answers the core's (predict_util.cc).
            raise invalid_argument(f'Serving signature name: "{exc.signature_name}" not found in signature def') \
                from None
        return predict_response.encode_predict(result.outputs, columnar[0])

    def classify(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        spec, examples = self._examples_request(name, version, label, body)
        return tf_example_json.encode_classify(self.dataplane.classify(spec, examples, self.timeout_s).outputs)

    def regress(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        spec, examples = self._examples_request(name, version, label, body)
        return tf_example_json.encode_regress(self.dataplane.regress(spec, examples, self.timeout_s).outputs)

    @staticmethod
    def _examples_request(name, version, label, body) -> tuple[ModelSpec, Examples]:
        doc = predict_request.parse_json(body)
        signature_name = predict_request.get_signature_name(doc)
        return ModelSpec(name, version, label, signature_name), tf_example_json.decode_examples(doc)

    def model_status(self, name: str, version: int | None, label: str | None) -> bytes:
        response = self.dataplane.model_status(ModelSpec(name, version, label))
        return _proto_json(response).encode()

    def model_metadata(self, name: str, version: int | None, label: str | None) -> bytes:
        response = self.dataplane.model_metadata(ModelSpec(name, version, label))
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_defs)
        # TF Serving writes the model spec and the unpacked SignatureDefMap and joins them by hand
        # (model_servers/http_rest_api_util.cc: ToJsonString); the same layout here.
        spec = json.loads(_proto_json(response.model_spec))
        spec_text = json.dumps(
            {"name": spec["name"], "signature_name": spec.get("signature_name", ""), "version": spec["version"]},
            indent=1,
        )
        # Signatures sorted by name: the proto map's own order varies from run to run.
        sigs = json.loads(_proto_json(signature_defs))
        sigs["signature_def"] = dict(sorted(sigs.get("signature_def", {}).items()))
        return (
            '{\n"model_spec":' + spec_text + ",\n"
            '"metadata": {"signature_def": ' + json.dumps(sigs, indent=1) + "}\n}\n"
        ).encode()
