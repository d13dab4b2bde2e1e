"""Hostile gRPC clients: one misbehaving client must not stop the server for everyone else.

One real `python -m server` (gRPC with 4 threads, a 3-second message read timeout, 5-second profiler
sessions) serving TF Serving's saved_model_half_plus_two_cpu. In each case a bad client misbehaves while
a well-behaved client beside it sends Predict calls, each of which must succeed within 1 s.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

import grpc
import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from server.grpc import profiler

from .serverproc import ServerProcess

PREDICT = "/tensorflow.serving.PredictionService/Predict"
READ_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def served(testdata):
    flags = ["--model_name=hp", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             "--grpc_max_threads=4", f"--grpc_message_read_timeout_s={READ_TIMEOUT_S}",
             "--profiler_max_session_s=5"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available("hp")
        yield server


def _request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0],
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2),
                                                            tensor_shape_pb2.TensorShapeProto.Dim(size=1)])))
    return request


def _good_client_served(server, calls: int = 5) -> list[float]:
    """`calls` Predict calls on a new connection, each within 1 s and right; their times."""
    times = []
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(calls):
            started = time.monotonic()
            response = stub.Predict(_request(), timeout=1.0)
            times.append(time.monotonic() - started)
            assert list(response.outputs["y"].float_val) == [2.5, 3.0]
    return times


class _Silent:
    """Calls to Predict whose request message never comes: the client's stream API with a request
    iterator that blocks until `release()` (the call's headers go out, no message does)."""

    def __init__(self, target: str, count: int):
        self.channel = grpc.insecure_channel(target)
        self.gate = threading.Event()
        call = self.channel.stream_unary(PREDICT, request_serializer=predict_pb2.PredictRequest.SerializeToString)
        self.futures = [call.future(self._nothing(), timeout=30) for _ in range(count)]

    def _nothing(self):
        self.gate.wait(30)
        return
        yield  # a generator that yields nothing

    def codes(self, timeout: float) -> set:
        out = set()
        for future in self.futures:
            try:
                future.result(timeout=timeout)
                out.add(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                out.add(exc.code())
        return out

    def release(self) -> None:
        self.gate.set()
        self.channel.close()


def test_calls_without_their_message_hold_no_thread(served):
    """100 calls whose message never arrives (25 x --grpc_max_threads); then they time out, answered
    DEADLINE_EXCEEDED at --grpc_message_read_timeout_s."""
    silent = _Silent(served.grpc_target, 100)
    try:
        time.sleep(0.5)                           # every call open on the server
        assert max(_good_client_served(served)) < 1.0
        started = time.monotonic()
        assert silent.codes(timeout=READ_TIMEOUT_S + 10) == {grpc.StatusCode.DEADLINE_EXCEEDED}
        assert time.monotonic() - started < READ_TIMEOUT_S + 5
    finally:
        silent.release()


# -- raw HTTP/2, for what grpcio's client never does: half a message, or a connection and nothing else

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman coding."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def _open_call(sock: socket.socket, path: str) -> None:
    headers = b"".join(_literal(k, v) for k, v in (
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"127.0.0.1"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")))
    sock.sendall(_PREFACE + _frame(4, 0, 0) + _frame(1, 4, 1, headers))   # SETTINGS, HEADERS (END_HEADERS)


def _frames(sock: socket.socket, until: float):
    """(type, flags, stream) of the frames the server sends, until it closes or `until` passes."""
    data = b""
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            return
        data += chunk
        while len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                break
            yield data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            data = data[9 + length:]


def test_a_message_trickled_slowly_costs_only_its_own_call(served):
    """A Predict message of 1 MB announced, then one byte every 0.1 s: the good client is served
    meanwhile, and the call is ended at the read timeout (its trailers, END_STREAM)."""
    host, port = served.grpc_target.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        _open_call(sock, PREDICT)
        sock.sendall(_frame(0, 0, 1, b"\x00" + struct.pack(">I", 1 << 20)))   # DATA: the message prefix
        stop = threading.Event()

        def trickle():
            while not stop.wait(0.1):
                try:
                    sock.sendall(_frame(0, 0, 1, b"\x00"))
                except OSError:
                    return
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            assert max(_good_client_served(served)) < 1.0
            ended = [f for f in _frames(sock, time.monotonic() + READ_TIMEOUT_S + 5)
                     if f[2] == 1 and f[0] == 1 and f[1] & 1]       # HEADERS with END_STREAM on stream 1
            assert ended, "the trickled call was never ended"
        finally:
            stop.set()
            sender.join()


def test_many_idle_connections(served):
    """1,000 connections that send the HTTP/2 preface and nothing else (and 100 that send nothing)."""
    host, port = served.grpc_target.split(":")
    socks = []
    try:
        for i in range(1100):
            sock = socket.create_connection((host, int(port)), timeout=5)
            socks.append(sock)
            if i < 1000:
                sock.sendall(_PREFACE + _frame(4, 0, 0))
        assert max(_good_client_served(served)) < 1.0
    finally:
        for sock in socks:
            sock.close()


def test_profiler_abuse(served):
    """A profiler client asks for every tracer at its highest level, continuously, and never reads it:
    the session ends at --profiler_max_session_s and the good client is served meanwhile."""
    request = profiler.messages()["ProfileRequest"](session_id="abuse")
    request.opts.version = 1
    request.opts.host_tracer_level = 3
    request.opts.python_tracer_level = 1
    with grpc.insecure_channel(served.grpc_target) as channel:
        call = channel.unary_unary(f"/{profiler.SERVICE}/StartContinuousProfiling",
                                   request_serializer=lambda m: m.SerializeToString())
        call(request, timeout=30)
        try:
            assert max(_good_client_served(served, calls=20)) < 1.0
            served.wait_log("Continuous profiling stopped", timeout=15)
        finally:
            stop = channel.unary_unary(f"/{profiler.SERVICE}/StopContinuousProfiling")
            try:
                stop(b"", timeout=5)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND      # already stopped by the bound
