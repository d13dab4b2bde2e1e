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

The server is grpc.aio on an event loop of its own thread; each unary call awaits its whole request
message there (at most `--grpc_message_read_timeout_s`), then runs its handler in a pool of
`--grpc_max_threads` threads (TF Serving's default, 4 per CPU): see dispatch.py. Calls still waiting for
their message, and idle connections (closed after `--grpc_max_connection_idle_s`), hold no thread.
grpcio's thread-pool server, used before, gave every call a pool thread as soon as it opened: 4 x CPUs
calls that never sent their message stopped gRPC for every other client.

Speed (issue 20, measured with a script outside the project: two server processes, old and new, h2load in
turn, 32 connections, one-element Predict on saved_model_half_plus_two_cpu, 3-second windows, 4 rounds,
2 shared busy cores): the thread-pool server 3,301 req/s median, this one 2,114 (0.64x); grpc.aio's own
unary path with the same handlers measured 0.90x of the thread-pool server in a shorter run. The earlier
variant measurement (python -m bench.grpc_transport, 2 shared cores) had thread pool 8 threads 2,355,
asyncio with a 1-thread executor 2,136 req/s on the stand-in model.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent import futures

import grpc
import grpc.aio
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from .. import dataplane as dp
from .channel_args import GrpcError, parse_channel_arguments
from .credentials import ALTS_UNAVAILABLE, alts_available, server_credentials
from .dispatch import Collector
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: futures.ThreadPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.options.port or self.options.grpc_socket_path)

    def start(self) -> "GrpcServer":
        logging.getLogger("grpc._common").addFilter(_UNDECODABLE)  # once: a logger keeps one of each filter
        threads = max(1, int(self.options.grpc_max_threads))
        self._executor = executor = futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc")
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(executor), loop).result()
        except BaseException:
            self._end_loop()
            raise
        if self.health is not None:
            threading.Thread(target=self._serve_health_when_available, name="grpc-health", daemon=True).start()
        return self

    async def _start(self, executor: futures.ThreadPoolExecutor) -> None:
        opts = self.options
        channel_args = [("grpc.max_receive_message_length", INT32_MAX),
                        ("grpc.max_send_message_length", INT32_MAX),
                        *idle_channel_arguments(opts),
                        *parse_channel_arguments(opts.grpc_channel_arguments or "")]
        server = grpc.aio.server(migration_thread_pool=executor, options=channel_args)
        services = Collector()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.plane, self.metrics, content=bool(opts.enable_serialization_as_tensor_content)),
            services)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.plane), services)
        if getattr(opts, "enable_profiler", False):
            add_profiler_service(services, python_tracer=bool(getattr(opts, "profiler_allow_python_tracer", False)),
                                 max_seconds=float(getattr(opts, "profiler_max_session_s", 60)))
            log.info("Profiler service is enabled")
        read_timeout = getattr(opts, "grpc_message_read_timeout_s", 60) or None
        services.register_on(server, executor, read_timeout)
        if opts.enable_grpc_healthcheck_service:
            self.health = await _add_health(server)
        alts = bool(getattr(opts, "use_alts_credentials", False))
        credentials = server_credentials(opts.ssl_config, alts=alts)
        log.info("Using %s", "ALTS credentials" if alts else "SSL credentials" if credentials is not None
                 else "InsecureServerCredentials")
        if opts.port:
            address = f"{_host(opts.rest_api_host)}:{opts.port}"
            self.port = _bind(server, address, credentials, alts)
            log.info("Running gRPC ModelServer at %s ...", address)
        if opts.grpc_socket_path:
            _bind(server, f"unix:{opts.grpc_socket_path}", credentials, alts)
            log.info("Running gRPC ModelServer at UNIX socket %s ...", opts.grpc_socket_path)
        await server.start()
        self.server = server

    def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        if self._loop is None:
            return
        if self.server is not None:
            server, self.server = self.server, None

            async def stop():
                if self.health is not None:
                    await self.health.enter_graceful_shutdown()
                await server.stop(grace)
            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(grace + 2)
            except Exception:  # noqa: BLE001 - stopping whatever happens
                log.exception("gRPC server did not stop cleanly")
        self._end_loop()

    def _end_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        # start() made the executor, then the loop, then its thread: with a loop, both are there.
        thread, executor = self._thread, self._executor
        if thread is not None:
            thread.join(5)
        if thread is None or not thread.is_alive():
            loop.close()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _set_health(self, status) -> bool:
        """Every service's health set to `status`; False (nothing set) once stop() has ended the loop."""
        loop = self._loop
        if loop is None:
            return False

        async def set_all():
            for service in ("", *SERVICE_NAMES):
                await self.health.set(service, status)
        asyncio.run_coroutine_threadsafe(set_all(), loop).result(5)
        return True

    def _serve_health_when_available(self) -> None:
        from grpc_health.v1 import health_pb2
        names = [m.name for m in getattr(self.options, "models", ())]
        while not self._stopping.is_set():
            if all(self._available(name) for name in names):
                if self._set_health(health_pb2.HealthCheckResponse.SERVING):
                    log.info("gRPC health: SERVING")
                return
            self._stopping.wait(0.1)

    def _available(self, name: str) -> bool:
        try:
            status = self.plane.model_status(dp.ModelSpec(name))
        except Exception:  # noqa: BLE001 - not loaded yet, whatever the reason
            return False
        return any(v.state == v.AVAILABLE for v in status.model_version_status)


async def _add_health(server: grpc.aio.Server):
    from grpc_health.v1 import _async as health
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    servicer = health.HealthServicer()
    for service in ("", *SERVICE_NAMES):
        await servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def idle_channel_arguments(opts) -> list[tuple[str, int]]:
    """`--grpc_max_connection_idle_s`: a connection with no call open for that long is closed (GOAWAY)."""
    idle = getattr(opts, "grpc_max_connection_idle_s", 0)
    return [("grpc.max_connection_idle_ms", int(idle * 1000))] if idle and idle > 0 else []


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(server: grpc.aio.Server, address: str, credentials, alts: bool = False) -> int:
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

