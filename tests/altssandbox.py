"""Run by tests/test_grpc_credentials.py inside a sandbox (own network and mount namespaces) where gRPC takes the
machine for a Google Compute Engine VM, so that it makes ALTS credentials: starts `python -m server
--use_alts_credentials`, waits until the model is loaded, then tries a plaintext Predict and, as a
control, a plaintext call to a plain gRPC server in the same sandbox. Prints one JSON line.

    python -m tests.altssandbox MODEL_BASE_PATH
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc

from .serverproc import free_port, stop_group


def plaintext_predict(target: str) -> str:
    """The status code of a plaintext Predict to `target` ("OK" when it answered)."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp2"
    request.inputs["x"].float_val.append(1.0)
    request.inputs["x"].dtype = 1                       # DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=1)
    with grpc.insecure_channel(target) as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=20)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


def control() -> str:
    """A plaintext call to a plaintext gRPC server here: "OK" when loopback gRPC works in the sandbox."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.T", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return "OK" if channel.unary_unary("/t.T/Echo")(b"x", timeout=10) == b"x" else "WRONG"
    finally:
        server.stop(None)


def main(base_path: str) -> dict:
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="alts-server-", suffix=".log")
    proc = subprocess.Popen([sys.executable, "-m", "server", f"--port={port}", "--rest_api_host=127.0.0.1",
                             "--use_alts_credentials", "--model_name=hp2", f"--model_base_path={base_path}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    result = {"control": control()}
    try:
        deadline = time.monotonic() + 120
        while "Successfully loaded servable version hp2" not in open(log.name).read():
            if proc.poll() is not None or time.monotonic() > deadline:
                result["log"] = open(log.name).read()[-3000:]
                return result
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            result["listening"] = True
        result["plaintext_predict"] = plaintext_predict(f"127.0.0.1:{port}")
        result["alive"] = proc.poll() is None
        result["alts_logged"] = "Using ALTS credentials" in open(log.name).read()
    finally:
        stop_group(proc)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
