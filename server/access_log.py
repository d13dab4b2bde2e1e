"""The access log (--access_log=PATH|-): one JSON line per request, REST and gRPC alike.

Each line: time (UTC, ISO 8601), client address, entrypoint ("REST" or "GRPC"), API, model, the version
that answered and its signature (null when none did), status (REST: the HTTP status; gRPC: the status
code's number, with its name in "code"), latency in milliseconds (until the response was made), the
request and response body sizes in bytes, and for REST the method and path. No request data.

Every value goes through `json.dumps` with `ensure_ascii`: a newline, a quote or any other character a
client puts in a path or a model name comes out escaped, so one request is always exactly one line.
Each line is one `os.write` to a file opened for appending, so the lines of several worker processes
never mix. The hooks are `wrap_wsgi` (REST: the WSGI app, and the responder rest/rsgi.py calls directly for
inference POSTs, which learns the client's address from `note_client`) and `wrap_grpc` (gRPC); the core tells the hooks
which version and signature answered through `note` (a thread-local: a request runs in one thread).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
import time

log = logging.getLogger("server.access_log")

_local = threading.local()
_installed: "AccessLog | None" = None
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))   # one encoder, not one per line


def note(name: str, version: int, signature_name: str) -> None:
    """The core's answer to this thread's request: which model, version and signature ran."""
    _local.answer = (name, version, signature_name)


def _take_answer():
    answer = getattr(_local, "answer", None)
    _local.answer = None
    return answer


class AccessLog:
    """Appends JSON lines to `path` ("-": standard output)."""

    def __init__(self, path: str):
        self.path = path
        if path == "-":
            self._fd, self._own = 1, False
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._own = True

    def write(self, entry: dict) -> None:
        line = _ENCODER.encode(entry) + "\n"
        try:
            os.write(self._fd, line.encode("ascii"))
        except OSError as exc:   # a full disk never fails a request
            log.error("Access log %s: %s", self.path, exc.strerror)

    def close(self) -> None:
        if self._own:
            os.close(self._fd)
            self._own = False


def install(path: str) -> AccessLog | None:
    """Open this process's access log (None when `path` is empty); the hooks write to it."""
    global _installed
    _installed = AccessLog(path) if path else None
    return _installed


def _now() -> str:
    t = time.time()
    second = int(t)
    if second != _second[0]:      # the date and time to the second, formatted once a second
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{int(t * 1000) % 1000:03d}Z"


_second: list = [None, ""]


# -- REST -------------------------------------------------------------------------------------

_PATH = re.compile(r"^/v1/models/([^/:]*)(?:/versions/[^/:]*|/labels/[^/:]*)?(?:/(metadata))?(?::(\w+))?$")


@functools.lru_cache(maxsize=256)
def _rest_api(method: str, path: str) -> tuple[str | None, str | None]:
    """(API, model name) a REST path names, as far as it can be read."""
    m = _PATH.match(path)
    if m is None:
        return None, None
    if method == "POST":
        return m.group(3), m.group(1)
    return ("metadata" if m.group(2) else "status"), m.group(1)


def wrap_wsgi(app, access: AccessLog | None = None):
    """The WSGI app `app` with one access log line per request (as is when no access log is installed)."""
    access = access or _installed
    if access is None:
        return app

    def logged(environ, start_response):
        started = time.perf_counter()
        _local.answer = None
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
        try:
            body = app(environ, start)
        finally:
            _safely(write_rest, access, environ, seen, time.perf_counter() - started)
        return body
    inner = getattr(app, "responder", None)
    if inner is not None:   # rest.app.ServingApp's shortcut for inference POSTs (rest/rsgi.py calls it), logged too
        logged.responder = _logged_responder(inner, access)   # type: ignore[attr-defined]
    return logged


def note_client(client: str) -> None:
    """The client address ("host:port") of this thread's request, for a request that reaches the responder
    without a WSGI environ (rest/rsgi.py's shortcut)."""
    _local.client = client


def _logged_responder(inner, access: AccessLog):
    def responder(method: str, path: str, read_body, *args):
        started = time.perf_counter()
        _local.answer = None
        read = [0]

        def counted() -> bytes:
            body = read_body()
            read[0] = len(body)
            return body
        status, sent = 500, []
        try:
            status, payload, headers = inner(method, path, counted, *args)
            sent = [*headers, ("Content-Length", str(len(payload)))]
            return status, payload, headers
        finally:
            client = getattr(_local, "client", "") or ""
            environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": client.rsplit(":", 1)[0],
                       "CONTENT_LENGTH": str(read[0])}
            _safely(write_rest, access, environ, {"status": str(status), "headers": sent},
                    time.perf_counter() - started)
    responder.max_body = getattr(inner, "max_body", 0)   # type: ignore[attr-defined]
    return responder


def write_rest(access: AccessLog, environ, seen: dict, seconds: float) -> None:
    method = environ.get("REQUEST_METHOD", "")
    path = environ.get("PATH_INFO", "")
    api, model = _rest_api(method, path)
    answer = _take_answer()
    status_line = seen.get("status") or "500"
    sent = next((v for k, v in seen.get("headers") or () if k.lower() == "content-length"), None)
    length = environ.get("CONTENT_LENGTH") or "0"
    access.write({
        "time": _now(), "client": environ.get("REMOTE_ADDR", ""), "entrypoint": "REST",
        "api": api, "model": answer[0] if answer else model,
        "version": answer[1] if answer else None, "signature": answer[2] if answer else None,
        "status": int(status_line.split(" ", 1)[0]) if status_line[:3].isdigit() else 500,
        "latency_ms": round(seconds * 1000, 3),
        "request_bytes": int(length) if length.isdigit() else 0,
        "response_bytes": int(sent) if sent is not None and str(sent).isdigit() else None,
        "method": method, "path": path,
    })


# -- gRPC -------------------------------------------------------------------------------------

def wrap_grpc(behavior, method: str):
    """A unary gRPC handler `behavior(request, context)` that writes its access-log line when it is done
    (the handler itself when no access log is installed). grpc/dispatch.py wraps every unary method with
    it; an exception that carries a `code` (the abort of grpc/dispatch.SyncContext) gives the status."""
    access = _installed
    if access is None:
        return behavior

    def logged(request, context):
        started = time.perf_counter()
        _local.answer = None
        response = code = None
        try:
            response = behavior(request, context)
            return response
        except Exception as exc:
            code = getattr(exc, "code", None)
            raise
        finally:
            _safely(write_grpc, access, method, request, response, code, context.peer(),
                    time.perf_counter() - started)
    return logged


def _safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the access log never fails a request
        log.error("Access log: %s: %s", type(exc).__name__, exc)


def _model_of(request) -> str | None:
    try:
        if request.HasField("model_spec"):
            return request.model_spec.name
        tasks = getattr(request, "tasks", None)
        return tasks[0].model_spec.name if tasks else None
    except (AttributeError, ValueError):
        return None


def write_grpc(access: AccessLog, method: str, request, response, code, client: str, seconds: float) -> None:
    import grpc
    answer = _take_answer()
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.OK if response is not None else grpc.StatusCode.UNKNOWN
    access.write({
        "time": _now(), "client": client, "entrypoint": "GRPC",
        "api": method.rsplit("/", 1)[-1], "model": answer[0] if answer else _model_of(request),
        "version": answer[1] if answer else None, "signature": answer[2] if answer else None,
        "status": code.value[0], "code": code.name,
        "latency_ms": round(seconds * 1000, 3),
        "request_bytes": request.ByteSize(), "response_bytes": response.ByteSize() if response is not None else None,
    })
