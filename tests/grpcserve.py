"""One real `python -m server` with gRPC on, serving TF Serving's test models and the handbook's MLP.

Started once per test session (`grpc_served` in conftest.py) and shared by the gRPC tests:
  hp2      saved_model_half_plus_two_2_versions, both versions (labels stable=123, canary=124)
  hp2cpu   saved_model_half_plus_two_cpu
  hp2tf2   saved_model_half_plus_two_tf2_cpu
  counter  saved_model_counter (stateful)
  two      a SavedModel made here whose signature has two outputs (for output_filter)
  MLP      the handbook's MLP (signature "call")
with Prometheus metrics on the REST port.
"""
from __future__ import annotations

import pathlib

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from .serverproc import ServerProcess

MODELS = ("hp2", "hp2cpu", "hp2tf2", "counter", "two", "MLP")


def export_two_outputs(path: pathlib.Path) -> None:
    """A model with signature serving_default: x float [-1] -> {"double": 2x, "square": x*x}."""
    import tensorflow as tf

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"double": 2.0 * x, "square": x * x}

    module = Two()
    tf.saved_model.save(module, str(path / "1"), signatures={"serving_default": module.serve})


def config_text(testdata: pathlib.Path, mlp_base: pathlib.Path, two_base: pathlib.Path) -> str:
    def entry(name, base, extra=""):
        return f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra}}}\n'
    return ("model_config_list {\n"
            + entry("hp2", testdata / "saved_model_half_plus_two_2_versions",
                    'model_version_policy { all {} } version_labels { key: "stable" value: 123 } '
                    'version_labels { key: "canary" value: 124 } ')
            + entry("hp2cpu", testdata / "saved_model_half_plus_two_cpu")
            + entry("hp2tf2", testdata / "saved_model_half_plus_two_tf2_cpu")
            + entry("counter", testdata / "saved_model_counter")
            + entry("two", two_base)
            + entry("MLP", mlp_base)
            + "}\n")


class Served:
    """The running server and stubs to it."""

    def __init__(self, server: ServerProcess):
        self.server = server
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    @property
    def url(self) -> str:
        return self.server.url


def start(tmp: pathlib.Path, testdata: pathlib.Path, mlp_base: pathlib.Path, extra_flags=()):
    two = tmp / "two"
    export_two_outputs(two)
    cfg = tmp / "models.config"
    cfg.write_text(config_text(testdata, mlp_base, two))
    server = ServerProcess([f"--model_config_file={cfg}",
                            f"--monitoring_config_file={testdata / 'monitoring_config.txt'}", *extra_flags],
                           grpc=True)
    server.__enter__()
    try:
        for name in MODELS:
            server.wait_available(name, every_version=True)
    except BaseException:
        server.__exit__(None, None, None)
        raise
    return server
