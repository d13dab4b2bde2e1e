"""The gRPC front end (server/grpc/server.py, calls.py): flags, TLS, Unix socket, health, deadlines."""
import datetime
import ipaddress
import subprocess
import sys
import threading
import time
import types

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_service_pb2_grpc

from server.errors import ServingError
from server.grpc import calls
from server.grpc import server as grpc_server

from .serverproc import ROOT, ServerProcess, free_port

# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------

def test_channel_arguments_as_tf_serving_reads_them():
    assert grpc_server.parse_channel_arguments("") == []
    assert grpc_server.parse_channel_arguments("grpc.max_connection_age_ms=1000,grpc.lb_policy_name=round_robin") == [
        ("grpc.max_connection_age_ms", 1000), ("grpc.lb_policy_name", "round_robin")]
    assert grpc_server.parse_channel_arguments("a=99999999999") == [("a", "99999999999")]  # not an int32
    with pytest.raises(grpc_server.GrpcError, match="expected key=value"):
        grpc_server.parse_channel_arguments("grpc.keepalive_time_ms")


def test_long_messages_are_cut_as_tf_serving_cuts_them():
    assert calls.status_message("x" * 1024) == "x" * 1024
    assert calls.status_message("x" * 1025) == "x" * 1024 + "...TRUNCATED"


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, remaining):
        self.remaining = remaining
        self.code = self.details = None

    def time_remaining(self):
        return self.remaining

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted()


def test_a_request_past_its_deadline_does_not_run():
    ran = []
    context = FakeContext(remaining=0.0)
    with pytest.raises(Aborted):
        calls.Call()(context, "Predict", "m", lambda: ran.append(1))
    assert ran == [] and context.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_errors_become_statuses_and_metrics():
    recorded = []
    metrics = types.SimpleNamespace(record_request=lambda *a, **k: recorded.append((a, k)))
    call = calls.Call(metrics)
    context = FakeContext(remaining=None)

    def fail():
        raise ServingError("NOT_FOUND", "no such model")
    with pytest.raises(Aborted):
        call(context, "Predict", "m", fail)
    assert (context.code, context.details) == (grpc.StatusCode.NOT_FOUND, "no such model")
    with pytest.raises(Aborted):
        call(context, "Regress", "m", lambda: 1 / 0)
    assert context.code == grpc.StatusCode.INTERNAL and "ZeroDivisionError" in context.details
    assert call(context, "Classify", "m", lambda: "answer") == "answer"
    assert [(a[2], a[3] is None, k["entrypoint"]) for a, k in recorded] == [
        ("NOT_FOUND", True, "GRPC"), ("INTERNAL", True, "GRPC"), ("OK", False, "GRPC")]


class SlowToLoad:
    """A DataPlane whose one model becomes AVAILABLE when `ready` is set."""

    def __init__(self):
        self.ready = threading.Event()

    def model_status(self, spec):
        response = get_model_status_pb2.GetModelStatusResponse()
        if self.ready.is_set():
            response.model_version_status.add(version=1, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response


def options(**overrides):
    values = dict(port=free_port(), grpc_socket_path="", grpc_channel_arguments="", grpc_max_threads=2,
                  enable_grpc_healthcheck_service=True, ssl_config=None,
                  enable_serialization_as_tensor_content=False, rest_api_host="127.0.0.1",
                  models=(types.SimpleNamespace(name="m"),))
    values.update(overrides)
    return types.SimpleNamespace(**values)


def test_health_turns_serving_once_the_models_are_available():
    plane = SlowToLoad()
    server = grpc_server.GrpcServer(plane, options()).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "tensorflow.serving.PredictionService", "PredictionService", "ModelService"):
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            plane.ready.set()
            deadline = time.monotonic() + 10
            while health.Check(health_pb2.HealthCheckRequest(), timeout=10).status != \
                    health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with pytest.raises(grpc.RpcError) as info:
                health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop(0)


def test_a_port_in_use_is_one_sentence():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(grpc_server.GrpcError, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
            grpc_server.GrpcServer(SlowToLoad(), options(port=port, enable_grpc_healthcheck_service=False)).start()


# ---------------------------------------------------------------------------------------------
# A real server: TLS with client certificates, a Unix socket, health, channel arguments
# ---------------------------------------------------------------------------------------------

def _cert(subject, key, issuer, issuer_key, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki():
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all made here."""
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("test CA", ca_key, "test CA", ca_key, ca=True)
    return types.SimpleNamespace(ca=ca, server_key=_pem(server_key), client_key=_pem(client_key),
                                 server_cert=_cert("localhost", server_key, "test CA", ca_key, server=True),
                                 client_cert=_cert("client", client_key, "test CA", ca_key))


def _text(pem: bytes) -> str:
    return pem.decode().replace("\n", "\\n")


@pytest.fixture(scope="module")
def secure(testdata, tmp_path_factory, pki):
    tmp = tmp_path_factory.mktemp("tls")
    ssl = tmp / "ssl.config"
    ssl.write_text(f'server_key: "{_text(pki.server_key)}"\nserver_cert: "{_text(pki.server_cert)}"\n'
                   f'custom_ca: "{_text(pki.ca)}"\nclient_verify: true\n')
    socket_path = tmp / "grpc.sock"
    flags = ["--model_name=hp2", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             f"--ssl_config_file={ssl}", f"--grpc_socket_path={socket_path}", "--enable_grpc_healthcheck_service",
             "--grpc_channel_arguments=grpc.max_connection_age_ms=600000,grpc.http2.max_ping_strikes=2"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available("hp2")
        yield types.SimpleNamespace(server=server, socket=f"unix:{socket_path}")


def _credentials(pki, client=True):
    if client:
        return grpc.ssl_channel_credentials(pki.ca, pki.client_key, pki.client_cert)
    return grpc.ssl_channel_credentials(pki.ca)


def _predict(channel):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp2"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.float32([[4.0]])))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return tf.make_ndarray(response.outputs["y"]).tolist()


def test_tls_with_client_certificate(secure, pki):
    with grpc.secure_channel(secure.server.grpc_target, _credentials(pki)) as channel:
        assert _predict(channel) == [[4.0]]


def test_tls_refuses_a_client_without_certificate_and_plaintext(secure, pki):
    for channel in (grpc.secure_channel(secure.server.grpc_target, _credentials(pki, client=False)),
                    grpc.insecure_channel(secure.server.grpc_target)):
        with channel, pytest.raises(grpc.RpcError) as info:
            _predict(channel)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unix_socket_with_the_same_credentials(secure, pki):
    with grpc.secure_channel(secure.socket, _credentials(pki),
                             options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        assert _predict(channel) == [[4.0]]


def test_health_service_on_a_real_server(secure, pki):
    with grpc.secure_channel(secure.server.grpc_target, _credentials(pki)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 10
        while True:
            status = health.Check(health_pb2.HealthCheckRequest(service="tensorflow.serving.PredictionService"),
                                  timeout=10).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert health.Check(health_pb2.HealthCheckRequest(service="ModelService"), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------------

def test_deadline_exceeded(grpc_served):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "MLP"
    request.model_spec.signature_name = "call"
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(np.zeros((100, 28, 28, 1), np.float32)))
    with pytest.raises(grpc.RpcError) as info:
        grpc_served.predict.Predict(request, timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server goes on serving.
    assert grpc_served.predict.Predict(request, timeout=30).outputs["output_0"].tensor_shape.dim[0].size == 100


# ---------------------------------------------------------------------------------------------
# gRPC only, and several workers on one port
# ---------------------------------------------------------------------------------------------

def _wait_grpc_available(target, name, timeout=120):
    from tensorflow_serving.apis import model_service_pb2_grpc
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        while True:
            try:
                response = stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": name}),
                                               timeout=5)
                if any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                       for s in response.model_version_status):
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, f"{name} not AVAILABLE over gRPC"
            time.sleep(0.2)


@pytest.mark.slow
def test_grpc_only_without_a_rest_api(testdata):
    flags = ["--rest_api_port=0", "--model_name=hp2", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"]
    with ServerProcess(flags, grpc=True) as server:
        _wait_grpc_available(server.grpc_target, "hp2")
        with grpc.insecure_channel(server.grpc_target) as channel:
            assert _predict(channel) == [[4.0]]
        with pytest.raises(requests.ConnectionError):  # no REST API
            requests.get(f"{server.url}/v1/models/hp2", timeout=2)


@pytest.mark.slow
def test_every_worker_serves_grpc_on_the_same_port(testdata):
    flags = ["--workers=2", "--model_name=hp2", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available("hp2")
        _wait_grpc_available(server.grpc_target, "hp2")
        deadline = time.monotonic() + 60
        while True:
            listening = {line.split()[2] for line in server.log_lines() if "Running gRPC ModelServer at" in line}
            if len(listening) == 2:
                break
            assert time.monotonic() < deadline, server.log_lines()[-20:]
            time.sleep(0.2)
        for _ in range(4):  # a new connection each time: the kernel picks a worker
            with grpc.insecure_channel(server.grpc_target) as channel:
                assert _predict(channel) == [[4.0]]


def test_predict_outputs_as_tensor_content_when_asked():
    """--enable_serialization_as_tensor_content: outputs in tensor_content (AsProtoTensorContent)."""
    from server.dataplane import Result
    from server.grpc import prediction_service

    class Plane:
        def predict(self, spec, inputs, output_filter=(), timeout_s=None):
            return Result(spec.name, 7, spec.resolved_signature_name,
                          {"y": np.float32([[1.5], [2.5]]), "s": np.array([b"a", b"bc"], object)})

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    for content in (False, True):
        response = prediction_service.predict(Plane(), request, content=content)
        assert bool(response.outputs["y"].tensor_content) == content
        assert bool(response.outputs["y"].float_val) != content
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[1.5], [2.5]])
        assert (response.model_spec.name, response.model_spec.version.value,
                response.model_spec.signature_name) == ("m", 7, "serving_default")


def test_an_undecodable_request_is_logged_in_one_line_without_a_traceback():
    import logging
    import sys
    try:
        predict_pb2.PredictRequest.FromString(b"\xff\xff\xff")
    except Exception:  # noqa: BLE001 - the parser's own error, as grpcio catches it
        exc_info = sys.exc_info()
    record = logging.LogRecord("grpc._common", logging.ERROR, __file__, 1, "Exception deserializing message!",
                               (), exc_info)
    assert grpc_server._UNDECODABLE.filter(record)
    assert record.exc_info is None and record.levelname == "WARNING"
    assert record.getMessage().startswith("gRPC request that is not a valid protobuf message -> INTERNAL: Error "
                                          "parsing message")
    other = logging.LogRecord("grpc._common", logging.ERROR, __file__, 1, "Exception serializing message!", (),
                              exc_info)
    assert grpc_server._UNDECODABLE.filter(other) and other.exc_info is exc_info  # anything else as it was


@pytest.mark.parametrize("case", ["key of another certificate", "not PEM"])
def test_a_bad_tls_config_stops_the_server_at_start(testdata, tmp_path, pki, case):
    """As tensorflow_model_server (BuildAndStart fails; main.cc prints it, status 255), before any worker."""
    key = _pem(_key()) if case == "key of another certificate" else b"not a key"
    ssl = tmp_path / "ssl.config"
    ssl.write_text(f'server_key: "{_text(key)}"\nserver_cert: "{_text(pki.server_cert)}"\n')
    done = subprocess.run([sys.executable, "-m", "server", f"--port={free_port()}", f"--rest_api_port={free_port()}",
                           "--rest_api_host=127.0.0.1", f"--ssl_config_file={ssl}",
                           f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 255
    assert done.stdout.endswith(
        "Failed to start server. Error: INVALID_ARGUMENT: Failed to BuildAndStart gRPC server\n")
    assert "gRPC cannot serve TLS with this server_key and server_cert" in done.stderr
    assert "worker" not in done.stdout + done.stderr and "Traceback" not in done.stderr
