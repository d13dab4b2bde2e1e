"""The HTTP layer: a Flask app that routes TF Serving's REST paths to the REST API (rest/handlers.py).

Routing follows TF Serving's own (model_servers/http_rest_api_util.cc, http_server.cc): every path
under `/v1/` (matched case-insensitively) is TF Serving's; POST matches the predict/classify/regress
pattern, GET the status/metadata pattern, OPTIONS is a CORS preflight, and anything else is 400
"Malformed request: METHOD PATH". Every error leaves as `{ "error": "..." }` with TF Serving's HTTP
status for its code. With --rest_api_enable_cors_support every such answer carries TF Serving's three
CORS headers.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Response, request

from .. import errors, monitoring
from .handlers import RestAPI

log = logging.getLogger("server.rest")

_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_VERBS = ("predict", "classify", "regress")  # RestAPI's methods of the same names
_INT64_MAX = 2**63 - 1
_JSON = "application/json"
# TF Serving's AddCORSHeaders (model_servers/http_rest_api_util.cc).
CORS_HEADERS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
                ("Access-Control-Allow-Headers", "Content-Type"))
_ORIGIN = re.compile(r"https?://")


def error_body(message: str) -> bytes:
    """TF Serving's error document: `{ "error": "<message>" }`."""
    try:
        return ('{ "error": ' + json.dumps(message, ensure_ascii=False) + " }").encode()
    except UnicodeEncodeError:  # a lone surrogate from the request (e.g. "\ud800") echoed back: escape it
        return ('{ "error": ' + json.dumps(message) + " }").encode()


def _version(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text) if len(text.lstrip("0")) <= 19 else _INT64_MAX + 1  # int() refuses thousands of digits
    if value > _INT64_MAX:
        raise errors.invalid_argument(f"Failed to convert version: {text} to numeric.")
    return value


@dataclass(frozen=True)
class Route:
    """What a path under /v1/ names. `kind`: "inference" (POST :predict/:classify/:regress, `verb` says
    which), "status" (GET status, or metadata when `verb` is "metadata"), "preflight" (OPTIONS) or
    "malformed" (anything else under /v1/: 400). Version stays text here: converting it can fail."""
    kind: str
    name: str | None = None
    version: str | None = None
    label: str | None = None
    verb: str | None = None


_MALFORMED, _PREFLIGHT = Route("malformed"), Route("preflight")

# Request paths repeat (a client calls the same model's URL again and again), and matching the
# patterns above on every request cost more than a cache hit: ~5 us against <1 us a request,
# measured in-process between model runs (alone, in a tight loop, the matches take ~0.4 us).
_ROUTE_CACHE_MAX_PATH = 256


@functools.lru_cache(maxsize=1024)
def _route_cached(method: str, path: str) -> Route | None:
    return _route_uncached(method, path)


def _route_uncached(method: str, path: str) -> Route | None:
    """The Route of a TF Serving path, or None for a path that is not TF Serving's at all (404)."""
    if not _V1.fullmatch(path):
        return None
    if method == "POST":
        m = _PREDICT.fullmatch(path)
        # The pattern ignores case, but TF Serving dispatches on the exact lower-case verb.
        if m and m.group(4) in _VERBS:
            return Route("inference", *m.groups())
    elif method == "GET":
        m = _STATUS.fullmatch(path)
        if m:
            return Route("status", *m.groups())
    elif method == "OPTIONS":
        return _PREFLIGHT
    return _MALFORMED


def route(method: str, path: str) -> Route | None:
    """_route_uncached, memoised for the usual short paths (long ones are not kept)."""
    if len(path) <= _ROUTE_CACHE_MAX_PATH:
        return _route_cached(method, path)
    return _route_uncached(method, path)


def dispatch(api: RestAPI, method: str, path: str, body: bytes, found: Route) -> bytes:
    """Run what `found` (route(method, path)) names; returns the JSON answer or raises ServingError."""
    if found.kind == "inference" and found.verb is not None:  # always a verb (_route_uncached)
        return getattr(api, found.verb)(found.name, _version(found.version), found.label, body)
    if found.kind == "status":
        version = _version(found.version)
        if found.verb == "metadata":  # exact, as in TF Serving; "/METADATA" falls through to status
            return api.model_metadata(found.name or "", version, found.label)
        return api.model_status(found.name or "", version, found.label)
    raise errors.invalid_argument(f"Malformed request: {method} {path}")


DEFAULT_MAX_BODY_BYTES = 256 << 20  # --rest_api_max_body_bytes


class BodyTooLarge(Exception):
    """Raised by a body reader for a body longer than --rest_api_max_body_bytes (413)."""


class Responder:
    """One request in, one answer out: `(status, body, headers)`, whatever happened.

    The only place that turns a path and a body into an HTTP answer; the Flask view and the WSGI
    shortcut (ServingApp.wsgi_app) both call it, so the two give the same bytes by construction.
    """

    def __init__(self, api: RestAPI, metrics=None, metrics_path: str | None = None, cors: bool = False,
                 max_body: int = DEFAULT_MAX_BODY_BYTES):
        self.api, self.metrics, self.metrics_path = api, metrics, metrics_path
        self.max_body = max_body
        self._json_headers = ((("Content-Type", _JSON),) + CORS_HEADERS) if cors else (("Content-Type", _JSON),)
        self._preflight_headers = CORS_HEADERS if cors else ()

    def __call__(self, method: str, path: str, read_body: Callable[[], bytes],
                 origin: str = "") -> tuple[int, bytes, tuple]:
        metrics = self.metrics
        if metrics is not None and path == self.metrics_path:
            return 200, metrics.render(), (("Content-Type", monitoring.CONTENT_TYPE),)
        found = route(method, path)
        if found is None:
            return 404, error_body(f"Not found: {method} {path}"), (("Content-Type", _JSON),)
        if found is _PREFLIGHT:
            # TF Serving answers a preflight with no body, with or without --rest_api_enable_cors_support
            # (the flag only adds the headers): 200 when the Origin header holds "http://" or "https://"
            # anywhere (http_server.cc: RE2::PartialMatch), else 400.
            return (200 if _ORIGIN.search(origin) else 400), b"", self._preflight_headers
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            answer = dispatch(self.api, method, path, read_body(), found)
        except errors.ServingError as exc:
            # A request error is the client's: at debug level (TF Serving logs them at VLOG(1)), counted in
            # :tensorflow:serving:request_count by status; the log's formatter keeps it on one line.
            log.debug("%s %s -> %d %s: %s", method, path, exc.http_status, exc.code, exc.message)
            if metrics is not None:
                self._record(found, exc.code, started)
            return exc.http_status, error_body(exc.message), self._json_headers
        except BodyTooLarge:  # TF Serving has no limit: no canonical code, 413
            log.debug("%s %s -> 413: body over %d bytes", method, path, self.max_body)
            return 413, error_body(f"Request body is larger than the limit of {self.max_body} bytes "
                                   "(--rest_api_max_body_bytes)"), self._json_headers
        except Exception as exc:  # never an HTML page or a dropped connection
            log.exception("%s %s -> 500: unexpected error", method, path)
            if metrics is not None:
                self._record(found, "INTERNAL", started)
            return 500, error_body(f"Internal error: {type(exc).__name__}: {exc}"), self._json_headers
        if metrics is not None:
            self._record(found, "OK", started)
        return 200, answer, self._json_headers

    def _record(self, found: Route, status: str, started: float) -> None:
        # Only inference requests are counted, as in TF Serving (status and metadata calls are not).
        if found.kind == "inference" and found.verb in monitoring.API_NAMES:
            self.metrics.record_request(found.name, monitoring.API_NAMES[found.verb], status,
                                        time.perf_counter() - started)


class ServingApp(Flask):
    """Flask, with inference requests (POST) handed from WSGI straight to the Responder.

    Flask's per-request machinery (request context, URL map, Request and Response objects) cost
    about as much as parsing a one-image predict body and running the MNIST model together (measured
    in-process: ~125 us of ~450 us per request). A POST whose body length is known and whose path is
    ASCII skips it; everything else (GET, chunked bodies, other paths) goes through Flask's routing
    to the same Responder. tests/test_app.py checks that both routes answer with the same bytes.
    """

    responder: Responder | None = None

    def wsgi_app(self, environ, start_response):
        responder = self.responder
        if responder is not None and environ.get("REQUEST_METHOD") == "POST":
            path = environ.get("PATH_INFO") or "/"
            length = environ.get("CONTENT_LENGTH") or ""
            if length.isdigit() and path.isascii() and "HTTP_TRANSFER_ENCODING" not in environ:
                stream, size = environ["wsgi.input"], int(length)
                status, payload, headers = responder("POST", path, lambda: _read(stream, size, responder.max_body))
                start_response(_status_line(status), [*headers, ("Content-Length", str(len(payload)))])
                return [payload]
        return super().wsgi_app(environ, start_response)


def _read(stream, size: int, limit: int) -> bytes:
    if limit and size > limit:
        raise BodyTooLarge  # refused before a byte of it is read
    return stream.read(size)


def _read_request(limit: int) -> bytes:
    """Flask's request body (a chunked one too), refused once it passes `limit` bytes."""
    if not limit:
        return request.get_data(cache=False)
    if (request.content_length or 0) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = request.stream.read(min(1 << 16, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge


@functools.lru_cache(maxsize=None)
def _status_line(code: int) -> str:
    return Response(status=code).status  # Werkzeug's own wording, e.g. "400 BAD REQUEST"


def create_app(api: RestAPI, metrics=None, metrics_path: str | None = None, shortcut: bool = True,
               cors: bool = False, max_body: int = DEFAULT_MAX_BODY_BYTES) -> Flask:
    """The WSGI app. `api` holds all state; the app keeps none of its own.

    With `metrics` (monitoring.Metrics), predict/classify/regress requests are counted and timed
    and `metrics_path` serves the Prometheus page, as TF Serving's --monitoring_config_file does.
    `cors`: TF Serving's --rest_api_enable_cors_support (its three headers on every /v1/ answer).
    `max_body`: --rest_api_max_body_bytes (0 = no limit); a longer body answers 413 unread.
    `shortcut=False` sends every request through Flask's routing (the tests compare the two).
    """
    app = ServingApp("server")
    app.url_map.merge_slashes = False  # "/v1/models//x" is malformed, as in TF Serving, not redirected
    responder = Responder(api, metrics, metrics_path, cors=cors, max_body=max_body)
    if shortcut:
        app.responder = responder

    def handle(path: str = "") -> Response:
        status, payload, headers = responder(request.method, request.path,
                                             lambda: _read_request(max_body),
                                             request.headers.get("Origin", ""))
        response = Response(payload, status, headers=list(headers))
        if not any(name == "Content-Type" for name, _ in headers):
            del response.headers["Content-Type"]  # a preflight answer has no body and no type
        return response

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app.add_url_rule("/", "root", handle, methods=methods, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "tf_serving", handle, methods=methods, provide_automatic_options=False,
                     strict_slashes=False)
    # What Werkzeug's rules cannot match (a path holding a newline, a method not listed above) gets the
    # same answers, not Werkzeug's HTML pages: 400 "Malformed request" under /v1/, else 404.
    app.register_error_handler(404, lambda exc: handle())
    app.register_error_handler(405, lambda exc: handle())
    return app
