"""server/access_log.py: --access_log against a real server process, REST and gRPC."""
import json
import socket
import time

import grpc
import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from .serverproc import ServerProcess

MODEL = "half_plus_two"


def raw_request(port: int, request_line: bytes) -> bytes:
    """Send bytes as they are (requests would quote them) and return the response's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_line + b"\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        return s.recv(4096).split(b"\r\n", 1)[0]


def lines_of(path, count: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_one_json_line_per_request_rest_and_grpc(testdata, tmp_path):
    out = tmp_path / "access.log"
    base = testdata / "saved_model_half_plus_two_cpu"
    with ServerProcess([f"--model_name={MODEL}", f"--model_base_path={base}", f"--access_log={out}",
                        "--workers=2"], grpc=True) as server:
        server.wait_available(MODEL)
        lines_before = len(lines_of(out, 0, timeout=0))   # the status polls of wait_available
        url = f"{server.url}/v1/models/{MODEL}"
        body = json.dumps({"instances": [1.0, 2.0]})
        assert requests.post(f"{url}:predict", data=body, timeout=10).status_code == 200
        assert requests.post(f"{url}/versions/9:predict", data=body, timeout=10).status_code == 404
        # A path that tries to forge a second line: a newline, a quote and a brace, sent raw.
        forged = b'/v1/models/x%0A{"api":"forged"}%22:predict'
        status = raw_request(server.port, b"POST " + forged + b" HTTP/1.1")
        assert status.startswith(b"HTTP/1.1 4")
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([5.0], np.float32)))
            stub.Predict(request, timeout=10)
            request.model_spec.name = "missing\nmodel"
            try:
                stub.Predict(request, timeout=10)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("a missing model answered")
        lines = lines_of(out, lines_before + 5)[lines_before:]
    assert len(lines) == 5, lines
    entries = [json.loads(line) for line in lines]   # every line is one JSON object
    rest_ok, rest_missing, rest_forged, grpc_ok, grpc_missing = entries
    assert rest_ok["entrypoint"] == "REST" and rest_ok["api"] == "predict" and rest_ok["model"] == MODEL
    assert (rest_ok["version"], rest_ok["signature"], rest_ok["status"]) == (123, "serving_default", 200)
    assert rest_ok["client"] == "127.0.0.1" and rest_ok["request_bytes"] == len(body)
    assert rest_ok["response_bytes"] > 0 and rest_ok["latency_ms"] > 0
    assert rest_ok["time"].endswith("Z")
    assert (rest_missing["status"], rest_missing["version"]) == (404, None)
    assert rest_forged["path"] == '/v1/models/x\n{"api":"forged"}":predict' and rest_forged["status"] >= 400
    assert "forged" not in [e.get("api") for e in entries]
    assert grpc_ok["entrypoint"] == "GRPC" and grpc_ok["api"] == "Predict" and grpc_ok["code"] == "OK"
    assert (grpc_ok["model"], grpc_ok["version"], grpc_ok["status"]) == (MODEL, 123, 0)
    assert grpc_ok["client"].startswith("ipv4:127.0.0.1:") and grpc_ok["response_bytes"] > 0
    assert (grpc_missing["code"], grpc_missing["model"]) == ("NOT_FOUND", "missing\nmodel")
    fields = {"time", "client", "entrypoint", "api", "model", "version", "signature", "status", "latency_ms",
              "request_bytes", "response_bytes"}
    for e in entries:   # no request data: only these fields (REST adds method and path, gRPC the code's name)
        assert set(e) - fields <= {"method", "path", "code"}, e
        assert "instances" not in json.dumps(e)


def test_off_by_default(testdata, tmp_path):
    with ServerProcess([f"--model_name={MODEL}",
                        f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"]) as server:
        server.wait_available(MODEL)
        r = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [1.0]}, timeout=10)
        assert r.status_code == 200
        assert not any(line.startswith('{"time"') for line in server.log_lines())


def test_stdout(testdata):
    with ServerProcess([f"--model_name={MODEL}", "--access_log=-",
                        f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"]) as server:
        server.wait_available(MODEL)
        requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [1.0]}, timeout=10)
        line = server.wait_log('"api":"predict"')
        assert json.loads(line)["status"] == 200
