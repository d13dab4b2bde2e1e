"""server/grpc/profiler.py: --enable_profiler serves TensorFlow's profiler service on the gRPC port, as
tensorflow_model_server does, so that TensorFlow's own client traces a running server."""
import threading
import time
import types

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from server.grpc import profiler
from server.grpc import server as grpc_server

from .serverproc import ServerProcess, free_port


@pytest.fixture(scope="module")
def profiled(testdata):
    flags = ["--model_name=hp2", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             "--enable_profiler=true"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available("hp2")
        server.wait_log("Profiler service is enabled")
        yield server


def _predict_request():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp2"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([[1.0], [2.0]])))
    return request


def _event_names(path) -> set[str]:
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    return {plane.event_metadata[event.metadata_id].name
            for plane in space.planes for line in plane.lines for event in line.events}


def test_tensorflows_client_traces_the_server_on_its_grpc_port(profiled, tmp_path):
    stop, answered = threading.Event(), []

    def predicts():
        with grpc.insecure_channel(profiled.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = _predict_request()
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                answered.append(stub.Predict(request, timeout=10).outputs["y"].float_val[:])
                time.sleep(0.01)

    sender = threading.Thread(target=predicts)
    sender.start()
    try:
        tf.profiler.experimental.client.trace(f"grpc://{profiled.grpc_target}", str(tmp_path), 1000)
    finally:
        stop.set()
        sender.join()
    assert answered and answered[0] == [2.5, 3.0]
    # Where TensorFlow's service writes it: LOGDIR/plugins/profile/RUN/HOST_PORT.xplane.pb
    traces = list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))
    assert [p.name for p in traces] == [f"127.0.0.1_{profiled.grpc_port}.xplane.pb"]
    # The predicts ran in the trace: the model's session runs and its two ops (y = 0.5 * x + 2).
    assert {"SessionRun", "Mul:Mul", "Add:Add"} <= _event_names(traces[0])


def _call(channel, method, request=b"", timeout=30):
    serialize = (lambda m: m) if isinstance(request, bytes) else (lambda m: m.SerializeToString())
    return channel.unary_unary(f"/{profiler.SERVICE}/{method}", request_serializer=serialize)(request,
                                                                                            timeout=timeout)


def _profile_request(**fields):
    request = profiler.messages()["ProfileRequest"](**fields)
    request.opts.version = 1
    request.opts.host_tracer_level = 2
    return request


def _code(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_the_services_other_answers_are_tensorflows(profiled, tmp_path):
    """As TensorFlow's own service answers them (tf.profiler.experimental.server.start)."""
    response = profiler.messages()["ProfileResponse"]
    with grpc.insecure_channel(profiled.grpc_target) as channel:
        # One session at a time: a continuous one holds it.
        _call(channel, "StartContinuousProfiling", _profile_request(session_id="c"))
        assert _code(lambda: _call(channel, "StartContinuousProfiling", _profile_request())) == (
            grpc.StatusCode.ALREADY_EXISTS, "A profiling session is already running.")
        short = _profile_request(emit_xspace=True)
        short.opts.duration_ms = 1
        assert _code(lambda: _call(channel, "Profile", short)) == (
            grpc.StatusCode.INTERNAL, "Another profiling session active.")
        snapshot = response.FromString(_call(channel, "GetSnapshot"))
        assert snapshot.xspace.planes                     # the XSpace itself, in the answer
        _call(channel, "StopContinuousProfiling")
        for method in ("GetSnapshot", "StopContinuousProfiling"):
            assert _code(lambda: _call(channel, method)) == (
                grpc.StatusCode.NOT_FOUND, "No continuous profiling session found.")
        # Terminate ends a session early, even one asked for before it starts.
        _call(channel, "Terminate", profiler.messages()["TerminateRequest"](session_id="t"))
        long = _profile_request(repository_root=str(tmp_path), session_id="t", host_name="127.0.0.1:1")
        long.opts.duration_ms = 60_000
        started = time.monotonic()
        assert not response.FromString(_call(channel, "Profile", long)).HasField("xspace")
        assert time.monotonic() - started < 30
        assert (tmp_path / "t" / "127.0.0.1_1.xplane.pb").is_file()
        # The client's deadline ends the session, and the next one starts.
        assert _code(lambda: _call(channel, "Profile", long, timeout=0.5))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 10
        while True:
            try:
                assert response.FromString(_call(channel, "Profile", short)).xspace.planes
                break
            except grpc.RpcError as exc:           # the ended session may still be closing
                assert exc.code() == grpc.StatusCode.INTERNAL and time.monotonic() < deadline
                time.sleep(0.1)
        assert _code(lambda: _call(channel, "Monitor")) == (grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")
        assert _code(lambda: _call(channel, "Profile", b"\xff\xff"))[0] == grpc.StatusCode.INTERNAL


def test_without_the_flag_there_is_no_profiler_service(tmp_path, capfd):
    options = types.SimpleNamespace(port=free_port(), grpc_socket_path="", grpc_channel_arguments="",
                                    grpc_max_threads=2, enable_grpc_healthcheck_service=False, ssl_config=None,
                                    enable_serialization_as_tensor_content=False, rest_api_host="127.0.0.1",
                                    models=(), enable_profiler=False)
    server = grpc_server.GrpcServer(None, options).start()
    try:
        target = f"127.0.0.1:{server.port}"
        with grpc.insecure_channel(target) as channel:
            assert _code(lambda: _call(channel, "Profile", _profile_request()))[0] == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(Exception, match="No trace event was collected"):
            tf.profiler.experimental.client.trace(f"grpc://{target}", str(tmp_path), 100, num_tracing_attempts=1)
        assert "UNIMPLEMENTED" in capfd.readouterr().err
        assert not list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))
    finally:
        server.stop(0)


def test_where_the_xspace_goes_and_the_session_settings(tmp_path):
    request = _profile_request(repository_root=str(tmp_path), session_id="run", host_name="10.0.0.2:8500")
    assert profiler.save_xspace(request, b"x") == str(tmp_path / "run" / "10.0.0.2_8500.xplane.pb")
    request.opts.override_hostname = "worker-0"        # as TensorFlow's service: the override names the file
    assert (tmp_path / "run" / "10.0.0.2_8500.xplane.pb").read_bytes() == b"x"
    assert profiler.save_xspace(request, b"y") == str(tmp_path / "run" / "worker-0.xplane.pb")
    assert profiler.session_options(request.opts) == {"host_tracer_level": 2, "device_tracer_level": 0,
                                                      "python_tracer_level": 0}
    # TensorFlow's defaults, the Python tracer off (tensorflow_model_server has none)
    assert profiler.session_options(profiler.messages()["ProfileRequest"]().opts) == {"python_tracer_level": 0}


def test_the_python_tracer_only_with_the_flag():
    """A client asking for the Python tracer (it records every Python call) gets level 0, as from a C++
    server, unless --profiler_allow_python_tracer says otherwise."""
    opts = _profile_request().opts
    opts.python_tracer_level = 1
    opts.host_tracer_level = 3
    assert profiler.session_options(opts) == {"host_tracer_level": 3, "device_tracer_level": 0,
                                              "python_tracer_level": 0}
    assert profiler.session_options(opts, python_tracer=True)["python_tracer_level"] == 1


def _in_process(max_seconds):
    options = types.SimpleNamespace(port=free_port(), grpc_socket_path="", grpc_channel_arguments="",
                                    grpc_max_threads=2, enable_grpc_healthcheck_service=False, ssl_config=None,
                                    enable_serialization_as_tensor_content=False, rest_api_host="127.0.0.1",
                                    models=(), enable_profiler=True, profiler_max_session_s=max_seconds)
    return grpc_server.GrpcServer(None, options).start()


def test_no_session_records_past_the_bound():
    """--profiler_max_session_s: Profile's duration is cut to it; a continuous session nobody reads
    within it is stopped, so that no client leaves one recording until memory runs out."""
    server = _in_process(1)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            long = _profile_request(emit_xspace=True)
            long.opts.duration_ms = 3_600_000              # an hour asked for
            started = time.monotonic()
            assert profiler.messages()["ProfileResponse"].FromString(_call(channel, "Profile", long)).xspace.planes
            assert time.monotonic() - started < 10
            _call(channel, "StartContinuousProfiling", _profile_request(session_id="c"))
            assert profiler.messages()["ProfileResponse"].FromString(_call(channel, "GetSnapshot")).xspace.planes
            time.sleep(2)                                  # no snapshot within the bound: stopped
            assert _code(lambda: _call(channel, "GetSnapshot")) == (
                grpc.StatusCode.NOT_FOUND, "No continuous profiling session found.")
            _call(channel, "StartContinuousProfiling", _profile_request(session_id="d"))   # the slot is free
            _call(channel, "StopContinuousProfiling")
    finally:
        server.stop(0)
