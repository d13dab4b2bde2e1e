"""The gRPC front end: PredictionService and ModelService (and the standard health service) on --port.

As tensorflow_model_server (model_servers/server.cc):
- `--port` (0: no TCP port) and `--grpc_socket_path` (also a Unix socket), both with the same credentials;
- `--ssl_config_file`: server key and certificate, `custom_ca` as the roots client certificates are
  checked against, `client_verify` to require one;
- `--use_alts_credentials`: Google's ALTS credentials on both instead (credentials.py: only on Google
  Cloud; elsewhere the server does not start, as it never falls back to plaintext);
- `--enable_profiler` (on by default, as TF Serving): TensorFlow's profiler service (profiler.py) on both;
- messages up to INT32_MAX bytes both ways; `--grpc_channel_arguments` ("key=value,key=value", a value
  that reads as a 32-bit integer is passed as one) applied after that, so they can override it;
- `--enable_grpc_healthcheck_service`: grpc.health.v1.Health answers SERVING for "" and the two services
  (by TF Serving's short names and by their full names) once every configured model has an AVAILABLE
  version (TF Serving starts its gRPC server only then), NOT_SERVING before that and while stopping.
The server listens on `rest_api_host` (this server's address flag, default 0.0.0.0 as TF Serving). With
`--workers N` every worker process serves the same port: gRPC's listeners set SO_REUSEPORT, so the
kernel spreads connections over the workers.

The server is grpcio's thread-pool server (`grpc.server`) with `--grpc_max_threads` threads (TF Serving's
default, 4 per CPU). Measured with `python -m bench.grpc_transport [--model BASE_PATH]` (one server
process, one client process keeping 32 one-image Predict calls in flight, 2 shared cores, median of 3
alternating 5-second rounds), in req/s:

    variant                                   stand-in model   the handbook's MLP
    thread pool, 8 threads                    2,355            2,078
    thread pool, 1 thread                     1,460            1,469
    asyncio, handler in a 1-thread executor   2,136            1,716
    asyncio, handler in the event loop        1,521            1,370

(the machine was shared and busy: single rounds varied by up to 40%). The event-loop variant would also
keep concurrent requests from ever sharing a batch.
"""
from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from .. import access_log
from .. import dataplane as dp
from .channel_args import GrpcError, parse_channel_arguments
from .credentials import ALTS_UNAVAILABLE, alts_available, server_credentials
from .model_service import ModelService
from .prediction_service import PredictionService
from .profiler import add_profiler_service

log = logging.getLogger("server.grpc")

INT32_MAX = 2**31 - 1
SERVICE_NAMES = ("ModelService", "PredictionService",
                 "tensorflow.serving.ModelService", "tensorflow.serving.PredictionService")


class _UndecodableRequest(logging.Filter):
    """grpcio answers a request that is not a valid protobuf message (corrupt bytes, invalid UTF-8 in a string
    field) with INTERNAL "Exception deserializing request!" before any handler runs, as TF Serving's C++ gRPC
    answers INTERNAL for one it cannot parse; grpcio also logs the parser's traceback. Keep one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Exception deserializing message!" and record.exc_info:
            error = record.exc_info[1]
            record.msg = "gRPC request that is not a valid protobuf message -> INTERNAL: %s"
            record.args = (" ".join(str(error).split()),)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UNDECODABLE = _UndecodableRequest()


class GrpcServer:
    """`GrpcServer(plane, options, metrics).start()` ... `.stop()`.

    `options`: the server's Options (port, grpc_socket_path, grpc_channel_arguments, grpc_max_threads,
    enable_grpc_healthcheck_service, ssl_config, use_alts_credentials, enable_profiler,
    enable_serialization_as_tensor_content, rest_api_host, models). `metrics`: monitoring.Metrics, or None.
    """

    def __init__(self, plane: dp.DataPlane, options, metrics=None):
        self.plane = plane
        self.options = options
        self.metrics = metrics
        self.server: grpc.Server | None = None
        self.port: int | None = None  # the TCP port bound (useful with port 0 in tests)
        self.health = None
        self._stopping = threading.Event()

    @property
    def enabled(self) -> bool:
        return bool(self.options.port or self.options.grpc_socket_path)

    def start(self) -> "GrpcServer":
        opts = self.options
        logging.getLogger("grpc._common").addFilter(_UNDECODABLE)  # once: a logger keeps one of each filter
        channel_args = [("grpc.max_receive_message_length", INT32_MAX),
                        ("grpc.max_send_message_length", INT32_MAX),
                        *parse_channel_arguments(opts.grpc_channel_arguments or "")]
        threads = max(1, int(opts.grpc_max_threads))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
                             options=channel_args, interceptors=access_log.grpc_interceptors())
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.plane, self.metrics, content=bool(opts.enable_serialization_as_tensor_content)),
            server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.plane), server)
        if getattr(opts, "enable_profiler", False):
            add_profiler_service(server)
            log.info("Profiler service is enabled")
        if opts.enable_grpc_healthcheck_service:
            self.health = _add_health(server)
        alts = bool(getattr(opts, "use_alts_credentials", False))
        credentials = server_credentials(getattr(opts, "ssl_config", None), alts=alts)
        log.info("Using %s", "ALTS credentials" if alts else "SSL credentials" if credentials is not None
                 else "InsecureServerCredentials")
        if opts.port:
            address = f"{_host(opts.rest_api_host)}:{opts.port}"
            self.port = _bind(server, address, credentials, alts)
            log.info("Running gRPC ModelServer at %s ...", address)
        if opts.grpc_socket_path:
            _bind(server, f"unix:{opts.grpc_socket_path}", credentials, alts)
            log.info("Running gRPC ModelServer at UNIX socket %s ...", opts.grpc_socket_path)
        server.start()
        self.server = server
        if self.health is not None:
            threading.Thread(target=self._serve_health_when_available, name="grpc-health", daemon=True).start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        if self.health is not None:
            self.health.enter_graceful_shutdown()
        if self.server is not None:
            self.server.stop(grace).wait(grace + 1)
            self.server = None

    def _serve_health_when_available(self) -> None:
        from grpc_health.v1 import health_pb2
        names = [m.name for m in getattr(self.options, "models", ())]
        while not self._stopping.is_set():
            if all(self._available(name) for name in names):
                for service in ("", *SERVICE_NAMES):
                    self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
                log.info("gRPC health: SERVING")
                return
            self._stopping.wait(0.1)

    def _available(self, name: str) -> bool:
        try:
            status = self.plane.model_status(dp.ModelSpec(name))
        except Exception:  # noqa: BLE001 - not loaded yet, whatever the reason
            return False
        return any(v.state == v.AVAILABLE for v in status.model_version_status)


def _add_health(server: grpc.Server):
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    servicer = health.HealthServicer()
    for service in ("", *SERVICE_NAMES):
        servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(server: grpc.Server, address: str, credentials, alts: bool = False) -> int:
    if alts and not alts_available():
        raise GrpcError(f"cannot listen for gRPC on {address}: {ALTS_UNAVAILABLE}")
    try:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError as exc:
        raise GrpcError(f"cannot listen for gRPC on {address}: {exc}") from None
    if port == 0:
        raise GrpcError(f"cannot listen for gRPC on {address} (in use, or not an address of this machine)")
    return port

