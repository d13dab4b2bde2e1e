"""The HTTP layer: a Flask app that routes TF Serving's REST paths to the ServingAPI.

Routing follows TF Serving's own (model_servers/http_rest_api_util.cc): every path under `/v1/`
(matched case-insensitively) is TF Serving's; POST matches the predict/classify/regress pattern,
GET the status/metadata pattern, and anything else is 400 "Malformed request: METHOD PATH".
Every error leaves as `{ "error": "..." }` with TF Serving's HTTP status for its code.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import time
from typing import Callable

from flask import Flask, Response, request

from . import errors, monitoring
from .handlers import ServingAPI

log = logging.getLogger("server.app")

_V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_VERBS = ("predict", "classify", "regress")  # ServingAPI's methods of the same names
_INT64_MAX = 2**63 - 1
_JSON = "application/json"


def error_body(message: str) -> bytes:
    """TF Serving's error document: `{ "error": "<message>" }`."""
    return ('{ "error": ' + json.dumps(message, ensure_ascii=False) + " }").encode()


def _version(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text)
    if value > _INT64_MAX:
        raise errors.invalid_argument(f"Failed to convert version: {text} to numeric.")
    return value


# Request paths repeat (a client calls the same model's URL again and again), and matching the
# patterns above on every request cost more than a cache hit: ~5 us against <1 us a request,
# measured in-process between model runs (alone, in a tight loop, the matches take ~0.4 us).
_ROUTE_CACHE_MAX_PATH = 256


@functools.lru_cache(maxsize=1024)
def _route_cached(method: str, path: str) -> tuple | None:
    return _route_uncached(method, path)


def _route_uncached(method: str, path: str) -> tuple | None:
    """What a TF Serving path names: ("predict", name, version, label, verb) for an inference POST,
    ("status", name, version, label, sub) for a status/metadata GET, None for any other path
    under /v1/, or () for a path that is not TF Serving's at all (404). Version stays text here."""
    if not _V1.fullmatch(path):
        return ()
    if method == "POST":
        m = _PREDICT.fullmatch(path)
        # The pattern ignores case, but TF Serving dispatches on the exact lower-case verb.
        if m and m.group(4) in _VERBS:
            return ("predict", *m.groups())
    elif method == "GET":
        m = _STATUS.fullmatch(path)
        if m:
            return ("status", *m.groups())
    return None


def route(method: str, path: str) -> tuple | None:
    """_route_uncached, memoised for the usual short paths (long ones are not kept)."""
    if len(path) <= _ROUTE_CACHE_MAX_PATH:
        return _route_cached(method, path)
    return _route_uncached(method, path)


def dispatch(api: ServingAPI, method: str, path: str, body: bytes, found: tuple | None) -> bytes:
    """Run what `found` (route(method, path)) names; returns the JSON answer or raises ServingError."""
    if found:
        kind, name, version, label, last = found
        if kind == "predict":
            return getattr(api, last)(name, _version(version), label, body)
        if last == "metadata":  # exact, as in TF Serving; "/METADATA" falls through to status
            return api.model_metadata(name or "", _version(version), label)
        return api.model_status(name or "", _version(version), label)
    raise errors.invalid_argument(f"Malformed request: {method} {path}")


class Responder:
    """One request in, one answer out: `(status, body, content type)`, whatever happened.

    The only place that turns a path and a body into an HTTP answer; the Flask view and the WSGI
    shortcut (ServingApp.wsgi_app) both call it, so the two give the same bytes by construction.
    """

    def __init__(self, api: ServingAPI, metrics=None, metrics_path: str | None = None):
        self.api, self.metrics, self.metrics_path = api, metrics, metrics_path

    def __call__(self, method: str, path: str, read_body: Callable[[], bytes]) -> tuple[int, bytes, str]:
        metrics = self.metrics
        if metrics is not None and path == self.metrics_path:
            return 200, metrics.render(), monitoring.CONTENT_TYPE
        found = route(method, path)
        if found == ():
            return 404, error_body(f"Not found: {method} {path}"), _JSON
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            answer = dispatch(self.api, method, path, read_body(), found)
        except errors.ServingError as exc:
            # One line per request error, whatever the message holds.
            log.warning("%s %s -> %d %s: %s", method, path, exc.http_status, exc.code, " ".join(exc.message.split()))
            if metrics is not None:
                self._record(found, exc.code, started)
            return exc.http_status, error_body(exc.message), _JSON
        except Exception as exc:  # never an HTML page or a dropped connection
            log.exception("%s %s -> 500: unexpected error", method, path)
            if metrics is not None:
                self._record(found, "INTERNAL", started)
            return 500, error_body(f"Internal error: {type(exc).__name__}: {exc}"), _JSON
        if metrics is not None:
            self._record(found, "OK", started)
        return 200, answer, _JSON

    def _record(self, found: tuple | None, status: str, started: float) -> None:
        # Only inference requests are counted, as in TF Serving (status and metadata calls are not).
        if found and found[0] == "predict" and found[4] in monitoring.API_NAMES:
            self.metrics.record_request(found[1], monitoring.API_NAMES[found[4]], status,
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
                stream = environ["wsgi.input"]
                status, payload, content_type = responder("POST", path, lambda: stream.read(int(length)))
                start_response(_status_line(status), [("Content-Type", content_type),
                                                      ("Content-Length", str(len(payload)))])
                return [payload]
        return super().wsgi_app(environ, start_response)


@functools.lru_cache(maxsize=None)
def _status_line(code: int) -> str:
    return Response(status=code).status  # Werkzeug's own wording, e.g. "400 BAD REQUEST"


def create_app(api: ServingAPI, metrics=None, metrics_path: str | None = None, shortcut: bool = True) -> Flask:
    """The WSGI app. `api` holds all state; the app keeps none of its own.

    With `metrics` (monitoring.Metrics), predict/classify/regress requests are counted and timed
    and `metrics_path` serves the Prometheus page, as TF Serving's --monitoring_config_file does.
    `shortcut=False` sends every request through Flask's routing (the tests compare the two).
    """
    app = ServingApp("server")
    app.url_map.merge_slashes = False  # "/v1/models//x" is malformed, as in TF Serving, not redirected
    responder = Responder(api, metrics, metrics_path)
    if shortcut:
        app.responder = responder

    def handle(path: str = "") -> Response:
        status, payload, content_type = responder(request.method, request.path,
                                                  lambda: request.get_data(cache=False))
        return Response(payload, status, content_type=content_type)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app.add_url_rule("/", "root", handle, methods=methods, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "tf_serving", handle, methods=methods, provide_automatic_options=False,
                     strict_slashes=False)
    return app
