"""tensorflow.serving.ModelService through the official stubs against real server processes."""
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from .serverproc import ServerProcess

pytestmark = pytest.mark.slow

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


def status_request(name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


def test_status_of_every_version(grpc_served):
    response = grpc_served.models.GetModelStatus(status_request("hp2"), timeout=30)
    assert sorted((s.version, s.state, s.status.error_code) for s in response.model_version_status) == [
        (123, AVAILABLE, 0), (124, AVAILABLE, 0)]
    rest = requests.get(f"{grpc_served.url}/v1/models/hp2", timeout=30).json()
    assert [(int(s["version"]), s["state"]) for s in rest["model_version_status"]] == [
        (s.version, "AVAILABLE") for s in response.model_version_status]


def test_status_of_one_version(grpc_served):
    response = grpc_served.models.GetModelStatus(status_request("hp2", 123), timeout=30)
    assert [(s.version, s.state) for s in response.model_version_status] == [(123, AVAILABLE)]


def test_status_errors(grpc_served):
    err = rpc_error(grpc_served.models.GetModelStatus, status_request("nope"))
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    err = rpc_error(grpc_served.models.GetModelStatus, status_request("hp2", 99))
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "Could not find version 99 of model hp2")
    err = rpc_error(grpc_served.models.GetModelStatus, get_model_status_pb2.GetModelStatusRequest())
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


# ---------------------------------------------------------------------------------------------
# HandleReloadConfigRequest
# ---------------------------------------------------------------------------------------------

def model_config(testdata, **models):
    config = model_server_config_pb2.ModelServerConfig()
    for name, folder in models.items():
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, str(testdata / folder), "tensorflow"
    return config


@pytest.fixture(scope="module")
def reloadable(testdata, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("reload") / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "a" base_path: '
                   f'"{testdata / "saved_model_half_plus_two_cpu"}" model_platform: "tensorflow" }} }}\n')
    with ServerProcess([f"--model_config_file={cfg}"], grpc=True) as server:
        server.wait_available("a")
        with grpc.insecure_channel(server.grpc_target) as channel:
            yield (model_service_pb2_grpc.ModelServiceStub(channel),
                   prediction_service_pb2_grpc.PredictionServiceStub(channel))


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


def available(models, name) -> bool:
    try:
        response = models.GetModelStatus(status_request(name), timeout=10)
    except grpc.RpcError:
        return False
    return any(s.state == AVAILABLE for s in response.model_version_status)


def predict_y(predict, name):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([2.0])))
    return tf.make_ndarray(predict.Predict(request, timeout=30).outputs["y"]).tolist()


def test_reload_adds_and_removes_models(reloadable, testdata):
    models, predict = reloadable
    request = model_management_pb2.ReloadConfigRequest(
        config=model_config(testdata, a="saved_model_half_plus_two_cpu", b="saved_model_half_plus_two_tf2_cpu"),
        metric_names=["/tensorflow/serving/model_warmup_latency"])
    response = models.HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0
    assert [(m.name, m.int64_value_increase) for m in response.metric] == [
        ("/tensorflow/serving/model_warmup_latency", 0)]
    wait_for(lambda: available(models, "b"))
    assert predict_y(predict, "b") == [3.0]
    assert predict_y(predict, "a") == [3.0]

    response = models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(
        config=model_config(testdata, b="saved_model_half_plus_two_tf2_cpu")), timeout=60)
    assert response.status.error_code == 0
    wait_for(lambda: not available(models, "a"))
    err = rpc_error(predict.Predict, predict_pb2.PredictRequest(model_spec={"name": "a"}))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert predict_y(predict, "b") == [3.0]


def test_reload_refuses_what_tf_serving_refuses(reloadable, testdata):
    models, predict = reloadable
    not_a_list = model_server_config_pb2.ModelServerConfig()
    not_a_list.custom_model_config.Pack(model_server_config_pb2.ModelServerConfig())
    err = rpc_error(models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest(config=not_a_list))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ServerModelConfig type not supported by HandleReloadConfigRequest. "
        "Only ModelConfigList is currently supported")
    twice = model_config(testdata, b="saved_model_half_plus_two_tf2_cpu")
    twice.model_config_list.config.add().CopyFrom(twice.model_config_list.config[0])
    err = rpc_error(models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest(config=twice))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "multiple times" in err.details()
