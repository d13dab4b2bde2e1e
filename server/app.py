"""The HTTP layer: a Flask app that routes TF Serving's REST paths to the ServingAPI.

Routing follows TF Serving's own (model_servers/http_rest_api_util.cc): every path under `/v1/`
(matched case-insensitively) is TF Serving's; POST matches the predict/classify/regress pattern,
GET the status/metadata pattern, and anything else is 400 "Malformed request: METHOD PATH".
Every error leaves as `{ "error": "..." }` with TF Serving's HTTP status for its code.
"""
from __future__ import annotations

import json
import logging
import re
import time

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


def dispatch(api: ServingAPI, method: str, path: str, body: bytes) -> bytes:
    """Route one request; returns the JSON answer or raises ServingError."""
    if method == "POST":
        m = _PREDICT.fullmatch(path)
        if m:
            name, version, label, verb = m.groups()
            # The pattern ignores case, but TF Serving dispatches on the exact lower-case verb.
            handler = {"predict": api.predict, "classify": api.classify, "regress": api.regress}.get(verb)
            if handler is not None:
                return handler(name, _version(version), label, body)
    elif method == "GET":
        m = _STATUS.fullmatch(path)
        if m:
            name, version, label, sub = m.groups()
            if sub == "metadata":  # exact, as in TF Serving; "/METADATA" falls through to status
                return api.model_metadata(name or "", _version(version), label)
            return api.model_status(name or "", _version(version), label)
    raise errors.invalid_argument(f"Malformed request: {method} {path}")


def create_app(api: ServingAPI, metrics=None, metrics_path: str | None = None) -> Flask:
    """The WSGI app. `api` holds all state; the app keeps none of its own.

    With `metrics` (monitoring.Metrics), predict/classify/regress requests are counted and timed
    and `metrics_path` serves the Prometheus page, as TF Serving's --monitoring_config_file does.
    """
    app = Flask("server")
    app.url_map.merge_slashes = False  # "/v1/models//x" is malformed, as in TF Serving, not redirected

    def handle(path: str = "") -> Response:
        full_path = request.path
        if metrics is not None and full_path == metrics_path:
            return Response(metrics.render(), 200, content_type=monitoring.CONTENT_TYPE)
        if not _V1.fullmatch(full_path):
            return Response(error_body(f"Not found: {request.method} {full_path}"), 404, content_type=_JSON)
        started = time.perf_counter()
        body = request.get_data(cache=False)
        try:
            answer = dispatch(api, request.method, full_path, body)
        except errors.ServingError as exc:
            # One line per request error, whatever the message holds.
            log.warning("%s %s -> %d %s: %s", request.method, full_path, exc.http_status, exc.code,
                        " ".join(exc.message.split()))
            _record(exc.code, started)
            return Response(error_body(exc.message), exc.http_status, content_type=_JSON)
        except Exception as exc:  # never an HTML page or a dropped connection
            log.exception("%s %s -> 500: unexpected error", request.method, full_path)
            _record("INTERNAL", started)
            return Response(error_body(f"Internal error: {type(exc).__name__}: {exc}"), 500, content_type=_JSON)
        _record("OK", started)
        return Response(answer, 200, content_type=_JSON)

    def _record(status: str, started: float) -> None:
        # Only inference requests are counted, as in TF Serving (status and metadata calls are not).
        if metrics is not None and request.method == "POST":
            m = _PREDICT.fullmatch(request.path)
            if m and m.group(4) in monitoring.API_NAMES:
                metrics.record_request(m.group(1), monitoring.API_NAMES[m.group(4)], status,
                                       time.perf_counter() - started)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    app.add_url_rule("/", "root", handle, methods=methods, provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "tf_serving", handle, methods=methods, provide_automatic_options=False,
                     strict_slashes=False)
    return app
