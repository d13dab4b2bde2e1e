"""bench/grpc_load.py: the gRPC frame h2load sends, and how its per-request log is read."""
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2

from bench import grpc_load


def test_frame_is_a_grpc_length_prefixed_message():
    request = grpc_load.predict_request("MLP", "call", "inputs", np.arange(6, dtype=np.float32).reshape(1, 2, 3))
    frame = grpc_load.grpc_frame(request)
    assert frame[0] == 0 and int.from_bytes(frame[1:5], "big") == len(frame) - 5
    back = predict_pb2.PredictRequest.FromString(frame[5:])
    assert (back.model_spec.name, back.model_spec.signature_name) == ("MLP", "call")
    tensor = back.inputs["inputs"]
    assert [d.size for d in tensor.tensor_shape.dim] == [1, 2, 3]
    np.testing.assert_array_equal(np.frombuffer(tensor.tensor_content, np.float32), np.arange(6))


def test_read_log_counts_failures_and_percentiles(tmp_path):
    log = tmp_path / "h2load.log"
    rows = [f"{1700000000000000 + i}\t200\t{(i + 1) * 1000}" for i in range(100)]
    rows += ["1700000000000200\t-1\t5000", "1700000000000300\t503\t100", "garbage"]
    log.write_text("\n".join(rows) + "\n")
    figures = grpc_load.read_log(log)
    assert figures == {"requests": 102, "failed": 2, "p50_ms": 50.0, "p99_ms": 99.0}


@pytest.mark.parametrize("values,p,expected", [([], 50, None), ([1.0], 99, 1.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
                                               ([1.0, 2.0, 3.0, 4.0], 75, 3.0), ([1.0, 2.0, 3.0, 4.0], 100, 4.0)])
def test_nearest_rank_percentile(values, p, expected):
    assert grpc_load.percentile(values, p) == expected


def test_h2load_command_speaks_grpc_to_loopback(tmp_path):
    cmd = grpc_load.h2load_command(8500, tmp_path / "body", 32, 3.0, tmp_path / "log")
    assert cmd[0] == "h2load" and cmd[-1] == "http://127.0.0.1:8500/tensorflow.serving.PredictionService/Predict"
    assert "content-type: application/grpc" in cmd and "te: trailers" in cmd
    assert cmd[cmd.index("-c") + 1] == "32" and cmd[cmd.index("-m") + 1] == "1"


@pytest.mark.skipif(grpc_load.h2load_available() is not None, reason="needs h2load (make h2load)")
def test_a_window_counts_only_its_own_requests(tmp_path):
    """h2load appends to an existing --log-file: a window must not count what an earlier one logged there."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from .serverproc import free_port

    class Answer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            return predict_pb2.PredictResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Answer(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        body = tmp_path / "body"
        body.write_bytes(grpc_load.grpc_frame(grpc_load.predict_request("m", "", "x", np.zeros(1, np.float32))))
        log = tmp_path / "h2load.log"
        log.write_text("1700000000000000\t200\t1000\n" * 100_000)     # an earlier window's lines
        figures = grpc_load.run(port, body, 2, 1.0, log)
    finally:
        server.stop(0)
    # One second of calls from 2 connections to a Python gRPC server is far fewer than the 100,000 old lines.
    assert 0 < figures["requests"] < 100_000, figures
    assert figures["failed"] == 0
