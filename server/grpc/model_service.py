"""tensorflow.serving.ModelService over the DataPlane: GetModelStatus and HandleReloadConfigRequest.

As TF Serving's model_servers/model_service_impl.cc and get_model_status_impl.cc: the status of every
version of a model (or of one version; a version label is not looked at), and a new ModelServerConfig
applied as a re-read --model_config_file is (only a model_config_list is accepted).
"""
from __future__ import annotations

from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2, model_service_pb2_grpc

from .. import dataplane as dp
from ..errors import invalid_argument, not_found
from .calls import Call


def model_status(plane: dp.DataPlane, request: get_model_status_pb2.GetModelStatusRequest
                 ) -> get_model_status_pb2.GetModelStatusResponse:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    has_version = spec.WhichOneof("version_choice") == "version"
    if not spec.name:  # TF Serving looks the empty name up, and finds nothing
        if has_version:
            raise not_found(f"Could not find version {spec.version.value} of model ")
        raise not_found("Could not find any versions of model ")
    return plane.model_status(dp.ModelSpec(spec.name, version=spec.version.value if has_version else None))


def reload_config(plane: dp.DataPlane, request: model_management_pb2.ReloadConfigRequest
                  ) -> model_management_pb2.ReloadConfigResponse:
    config = request.config
    if config.WhichOneof("config") != "model_config_list":
        raise invalid_argument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                               "Only ModelConfigList is currently supported")
    plane.reload_config(config)  # a config it refuses raises ServingError (INVALID_ARGUMENT)
    response = model_management_pb2.ReloadConfigResponse()
    response.status.error_code = 0  # OK
    # TF Serving reports how much each named TensorFlow metric grew during the reload; this server keeps
    # no TensorFlow-internal metrics, so each name is answered as TF Serving answers an unknown one: 0.
    for name in request.metric_names:
        metric = response.metric.add()
        metric.name = name
        metric.int64_value_increase = 0
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: dp.DataPlane):
        self.plane = plane
        self.call = Call()

    def GetModelStatus(self, request, context):
        return self.call(context, None, request.model_spec.name, model_status, self.plane, request)

    def HandleReloadConfigRequest(self, request, context):
        return self.call(context, None, "", reload_config, self.plane, request)
