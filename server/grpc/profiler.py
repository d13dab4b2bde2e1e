"""TensorFlow's profiler service (tensorflow.ProfilerService) on the gRPC port: `--enable_profiler`.

tensorflow_model_server registers TensorFlow's ProfilerService (tsl::profiler::CreateProfilerService) on
its gRPC server, beside PredictionService and ModelService, when --enable_profiler is true (its default),
so that `tf.profiler.experimental.client.trace("grpc://HOST:8500", logdir, duration_ms)` or TensorBoard's
"capture profile" traces the running server. This module serves the same RPCs on this server's gRPC port
(and Unix socket), as TensorFlow's own service answers them:

- Profile: a TensorFlow profiler session with the request's options runs for `opts.duration_ms` (ended
  early by Terminate with the request's session_id; CANCELLED when the client goes away or its deadline
  passes), then the XSpace it collected is written to `repository_root/session_id/HOST.xplane.pb` (HOST:
  `opts.override_hostname`, else the request's host_name, ":" written "_"), or returned in the answer with
  `emit_xspace`; `empty_trace` says whether it holds any event. A session that cannot start (one is
  already running: one per process) answers INTERNAL with TensorFlow's message.
- StartContinuousProfiling / GetSnapshot / StopContinuousProfiling: one session kept running; a snapshot
  returns what it collected and starts it again; NOT_FOUND without one, ALREADY_EXISTS for a second.
- Monitor: UNIMPLEMENTED "unimplemented.", as TensorFlow's.

TensorFlow's own server (`tf.profiler.experimental.server.start`) listens on every interface of a port of
its own, so it is not used: the sessions are TensorFlow's (`_pywrap_profiler.ProfilerSession`, what
`tf.profiler.experimental.start` runs), served here by grpcio. The session takes the request's tracer
levels for host and device; the Python tracer level only with --profiler_allow_python_tracer (else 0, as
in tensorflow_model_server, which has no Python tracer), and no session records longer than
--profiler_max_session_s (see ProfilerService). TPU-only settings have no use here. With `--workers N` a trace is of the
one worker process that the client's connection reached. TensorFlow is imported at the first request.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import threading
import time

import grpc
from google.protobuf import descriptor_pb2

from .. import textproto

log = logging.getLogger("server.grpc")

SERVICE = "tensorflow.ProfilerService"
_UINT64 = descriptor_pb2.FieldDescriptorProto.TYPE_UINT64
_MESSAGES = None
_MESSAGES_LOCK = threading.Lock()


def messages() -> dict:
    """The service's request and answer classes, with tsl/profiler/protobuf/profiler_service.proto's
    names and numbers (the fields this service reads or writes); ProfileOptions and XSpace are
    TensorFlow's own."""
    global _MESSAGES
    with _MESSAGES_LOCK:
        if _MESSAGES is None:
            from tensorflow.tsl.profiler.protobuf import profiler_options_pb2, xplane_pb2
            OPT, R, S, B, M = (textproto.OPTIONAL, textproto.REPEATED, textproto.STRING, textproto.BOOL,
                               textproto.MESSAGE)
            _MESSAGES = textproto.message_classes(
                "tsl/profiler/protobuf/profiler_service.proto", "tensorflow",
                {"ProfileRequest": [("duration_ms", 1, OPT, _UINT64, None), ("max_events", 2, OPT, _UINT64, None),
                                    ("tools", 3, R, S, None), ("opts", 4, OPT, M, ".tensorflow.ProfileOptions"),
                                    ("repository_root", 5, OPT, S, None), ("session_id", 6, OPT, S, None),
                                    ("host_name", 7, OPT, S, None), ("emit_xspace", 9, OPT, B, None)],
                 "ProfileResponse": [("empty_trace", 7, OPT, B, None),
                                     ("xspace", 8, OPT, M, ".tensorflow.profiler.XSpace")],
                 "TerminateRequest": [("session_id", 1, OPT, S, None)],
                 "Empty": []},
                dependencies=[profiler_options_pb2.DESCRIPTOR, xplane_pb2.DESCRIPTOR])
    return _MESSAGES


class SessionError(Exception):
    """A profiler session that could not start or collect; the message is TensorFlow's."""


class Session:
    """One TensorFlow profiler session, started with a ProfileOptions message (TensorFlow's rules: a
    message without a version gets TensorFlow's default options)."""

    def __init__(self, opts, python_tracer: bool = False):
        from tensorflow.python.profiler.internal import _pywrap_profiler
        self._dir = tempfile.mkdtemp(prefix="profile-")
        self._session = _pywrap_profiler.ProfilerSession()
        try:
            self._session.start(self._dir, session_options(opts, python_tracer))
        except Exception as exc:  # noqa: BLE001 - TensorFlow's error types, reported by message
            shutil.rmtree(self._dir, ignore_errors=True)
            raise SessionError(getattr(exc, "message", None) or str(exc)) from None

    def collect(self) -> bytes:
        """Stop and return the serialized XSpace collected."""
        try:
            self._session.export_to_tb()
            paths = glob.glob(os.path.join(self._dir, "plugins", "profile", "*", "*.xplane.pb"))
            if not paths:
                raise SessionError("the profiler session collected no XSpace")
            with open(paths[0], "rb") as f:
                return f.read()
        except SessionError:
            raise
        except Exception as exc:  # noqa: BLE001 - TensorFlow's errors and the file system's, by message
            raise SessionError(getattr(exc, "message", None) or str(exc)) from None
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def discard(self) -> None:
        """Stop without keeping what was collected."""
        try:
            self._session.stop()
        except Exception as exc:  # noqa: BLE001 - nothing to answer: the call has ended
            log.warning("Profiler session did not stop cleanly: %s", exc)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def session_options(opts, python_tracer: bool = False) -> dict:
    """The settings TensorFlow's Python session takes, from a ProfileOptions message. The Python tracer
    (it records every Python call) only with `python_tracer` (--profiler_allow_python_tracer): else its
    level is 0, as in tensorflow_model_server, whose process has no Python tracer."""
    if not opts.version:
        return {"python_tracer_level": 0}   # TensorFlow's default options, Python tracer off
    return {"host_tracer_level": opts.host_tracer_level, "device_tracer_level": opts.device_tracer_level,
            "python_tracer_level": opts.python_tracer_level if python_tracer else 0}


def is_empty(xspace) -> bool:
    return not any(line.events for plane in xspace.planes for line in plane.lines)


def save_xspace(request, data: bytes) -> str:
    """Write the XSpace where TensorFlow's service writes it; returns the path."""
    host = request.opts.override_hostname or request.host_name
    folder = os.path.join(request.repository_root, request.session_id)
    if folder:
        os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{host}.xplane.pb".replace(":", "_"))
    with open(path, "wb") as f:
        f.write(data)
    log.info("Collecting XSpace to repository: %s", path)
    return path


class ProfilerService:
    """`python_tracer`: --profiler_allow_python_tracer. `max_seconds`: --profiler_max_session_s, the
    longest a session records (a Profile call's duration is cut to it; a continuous session not read
    with GetSnapshot within it is stopped and dropped), so that no client keeps one recording until
    the memory runs out."""

    def __init__(self, python_tracer: bool = False, max_seconds: float = 60.0):
        self._lock = threading.Condition()
        self._stopped: set[str] = set()        # Terminate's session ids
        self._continuous = None                # (request, Session) of StartContinuousProfiling
        self.python_tracer = python_tracer
        self.max_seconds = max_seconds

    def _session(self, opts) -> "Session":
        return Session(opts, self.python_tracer)

    def _expire_later(self, session: "Session") -> None:
        timer = threading.Timer(self.max_seconds, self._expire, (session,))
        timer.daemon = True
        timer.start()

    def _expire(self, session: "Session") -> None:
        with self._lock:
            if self._continuous is None or self._continuous[1] is not session:
                return
            self._continuous = None
        log.info("Continuous profiling stopped: no GetSnapshot within --profiler_max_session_s=%g", self.max_seconds)
        session.discard()

    # -- Profile / Terminate
    def Profile(self, request, context):
        response = messages()["ProfileResponse"]()
        opts = request.opts
        if opts.start_timestamp_ns:                      # a start time set by the client (delay_ms)
            delay = opts.start_timestamp_ns / 1e9 - time.time()
            if delay > 0 and not self._wait(request.session_id, context, delay):
                return self._cancelled(context, response)
        try:
            session = self._session(opts)
        except SessionError as exc:
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        try:
            if not self._wait(request.session_id, context, min(opts.duration_ms / 1000, self.max_seconds)):
                session.discard()
                return self._cancelled(context, response)
            self._collect(request, session, response)
        except SessionError as exc:
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        return response

    def Terminate(self, request, context):
        with self._lock:
            self._stopped.add(request.session_id)
            self._lock.notify_all()
        return messages()["Empty"]()

    def _wait(self, session_id: str, context, seconds: float) -> bool:
        """Wait `seconds` or until Terminate(session_id); False if the call ended (cancelled, deadline)."""
        context.add_callback(self._wake)
        deadline = time.monotonic() + seconds
        with self._lock:
            while True:
                if not context.is_active():
                    return False
                if session_id in self._stopped:
                    self._stopped.discard(session_id)
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._lock.wait(min(left, 0.5))

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    @staticmethod
    def _cancelled(context, response):
        context.set_code(grpc.StatusCode.CANCELLED)
        return response

    @staticmethod
    def _collect(request, session: Session, response) -> None:
        data = session.collect()
        response.xspace.MergeFromString(data)
        response.empty_trace = is_empty(response.xspace)
        if not request.emit_xspace:
            response.ClearField("xspace")
            try:
                save_xspace(request, data)
            except OSError as exc:
                raise SessionError(str(exc)) from None

    # -- continuous profiling
    def StartContinuousProfiling(self, request, context):
        with self._lock:
            if self._continuous is not None:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "A profiling session is already running.")
            try:
                session = self._session(request.opts)
            except SessionError as exc:
                context.abort(grpc.StatusCode.INTERNAL, f"Failed to create profiler session: {exc}")
            kept = messages()["ProfileRequest"]()
            kept.CopyFrom(request)
            kept.emit_xspace = True
            self._continuous = (kept, session)
            self._expire_later(session)
        return messages()["Empty"]()

    def StopContinuousProfiling(self, request, context):
        with self._lock:
            if self._continuous is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "No continuous profiling session found.")
            _, session = self._continuous
            self._continuous = None
        session.discard()
        return messages()["Empty"]()

    def GetSnapshot(self, request, context):
        response = messages()["ProfileResponse"]()
        with self._lock:
            if self._continuous is None:
                context.abort(grpc.StatusCode.NOT_FOUND, "No continuous profiling session found.")
            kept, session = self._continuous
            self._continuous = None
            try:
                self._collect(kept, session, response)
                kept.session_id = kept.opts.session_id = str(time.time_ns())
                session = self._session(kept.opts)
                self._continuous = (kept, session)
                self._expire_later(session)
            except SessionError as exc:
                context.abort(grpc.StatusCode.INTERNAL, str(exc))
        return response

    @staticmethod
    def Monitor(request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "unimplemented.")


def _decoder(name: str):
    return lambda data: messages()[name].FromString(data)


def _encode(message) -> bytes:
    return message.SerializeToString()


def add_profiler_service(server: grpc.Server, python_tracer: bool = False, max_seconds: float = 60.0
                         ) -> ProfilerService:
    """Register tensorflow.ProfilerService on `server` (before it starts)."""
    service = ProfilerService(python_tracer, max_seconds)

    def method(handler, request_type):
        return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=_decoder(request_type),
                                                   response_serializer=_encode)
    handlers = {
        "Profile": method(service.Profile, "ProfileRequest"),
        "Terminate": method(service.Terminate, "TerminateRequest"),
        "Monitor": method(service.Monitor, "Empty"),
        "StartContinuousProfiling": method(service.StartContinuousProfiling, "ProfileRequest"),
        "StopContinuousProfiling": method(service.StopContinuousProfiling, "Empty"),
        "GetSnapshot": method(service.GetSnapshot, "Empty"),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_registered_method_handlers(SERVICE, handlers)
    return service
