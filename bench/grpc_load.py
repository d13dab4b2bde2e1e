"""gRPC load for `make bench`: h2load (nghttp2's HTTP/2 load generator, a Debian package) sending one
serialized PredictRequest again and again, as a gRPC client would.

A gRPC call is an HTTP/2 POST to /tensorflow.serving.PredictionService/Predict with the body framed as
gRPC frames it (one flag byte, a 4-byte big-endian length, the serialized message). h2load sends that
body from a file on as many connections as asked, one call at a time on each (like wrk's connections
for REST), and logs every response's HTTP status and latency (--log-file), from which the requests,
failures and percentiles are read here. h2load sees HTTP statuses only, not the gRPC status in the
trailers: an answer is counted as a success only if it is HTTP 200 *and* the server's own count of
failed gRPC requests did not grow (see `run`'s `failed_calls`), and `check_answer` calls the same
request through the official stub before the load to compare it with the REST answer.
"""
from __future__ import annotations

import math
import pathlib
import shutil
import subprocess

PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"


def grpc_frame(message) -> bytes:
    """A protobuf message as one uncompressed gRPC length-prefixed frame."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def predict_request(model: str, signature: str, input_key: str, array):
    """The PredictRequest a TF Serving client sends for `array` (tensor_content, as tf.make_tensor_proto)."""
    import numpy as np
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    array = np.ascontiguousarray(array, dtype=np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=array.tobytes(),
                                    tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]))
    request.inputs[input_key].CopyFrom(tensor)
    return request


def h2load_available() -> str | None:
    """None when h2load can run, else why not."""
    return None if shutil.which("h2load") else "h2load not found (apt-get install nghttp2-client)"


def h2load_command(port: int, data: pathlib.Path, connections: int, seconds: float,
                   log: pathlib.Path) -> list[str]:
    return ["h2load", "--connection-active-timeout=0", "-c", str(connections), "-m", "1",
            "-D", f"{seconds:g}", "-d", str(data), "-H", "content-type: application/grpc",
            "-H", "te: trailers", "--log-file", str(log), f"http://127.0.0.1:{port}{PREDICT_PATH}"]


def read_log(log: pathlib.Path) -> dict:
    """h2load's per-request log -> requests, HTTP failures and latency percentiles (ms)."""
    latencies, failed = [], 0
    for line in log.read_text().splitlines():
        cols = line.split("\t")
        if len(cols) < 3:
            continue
        if cols[1] != "200":
            failed += 1
            continue
        latencies.append(int(cols[2]) / 1000.0)
    latencies.sort()
    return {"requests": len(latencies) + failed, "failed": failed,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


def percentile(sorted_values: list[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def run(port: int, data: pathlib.Path, connections: int, seconds: float, log: pathlib.Path,
        timeout: float | None = None) -> dict:
    """One h2load window; returns read_log's figures and h2load's own summary line."""
    # h2load appends to an existing --log-file: without this, a window would count every earlier
    # window's requests written to the same file too.
    log.unlink(missing_ok=True)
    cmd = h2load_command(port, data, connections, seconds, log)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or seconds + 30)
    figures = read_log(log) if log.exists() else {"requests": 0, "failed": 0, "p50_ms": None, "p99_ms": None}
    summary = next((line.strip() for line in done.stdout.splitlines() if line.startswith("requests:")), "")
    figures.update(seconds=seconds, summary=summary, returncode=done.returncode)
    return figures


def check_answer(port: int, request):
    """The outputs of one Predict call through the official stub (numpy arrays by output key)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
