"""What every RPC shares: ServingError -> gRPC status, the deadline, request metrics.

As TF Serving's model_servers/grpc_status_util.cc (ToGRPCStatus: the status code as is, messages past
1024 characters cut with "...TRUNCATED") and prediction_service_impl.cc (request_count for every
Predict/Classify/Regress, request_latency with entrypoint="GRPC" for those that succeeded).
"""
from __future__ import annotations

import logging
import time

import grpc

from ..errors import ServingError

log = logging.getLogger("server.grpc")

MESSAGE_LIMIT = 1024
ENTRYPOINT = "GRPC"


def status_message(message: str) -> str:
    if len(message) > MESSAGE_LIMIT:
        return message[:MESSAGE_LIMIT] + "...TRUNCATED"
    return message


class Call:
    """Runs one RPC's handler: `Call(metrics)(context, method, model_name, handler, *args)`.

    `handler(*args)` returns the response or raises ServingError; anything else it raises is an
    INTERNAL error with one log line, never a dropped connection. `api` names the metrics' API label
    ("Predict", "Classify", "Regress"); None records nothing (metadata, status, reload, MultiInference,
    as TF Serving).
    """

    def __init__(self, metrics=None):
        self.metrics = metrics

    def __call__(self, context, api: str | None, model_name: str, handler, *args):
        started = time.perf_counter()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            self._record(api, model_name, "DEADLINE_EXCEEDED", started)
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        try:
            response = handler(*args)
        except ServingError as exc:
            log.debug("gRPC %s -> %s: %s", api or _method_name(handler), exc.code, exc.message)
            self._record(api, model_name, exc.code, started)
            context.abort(grpc.StatusCode[exc.code], status_message(exc.message))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the client gets a status, not a reset
            log.exception("gRPC %s -> INTERNAL: unexpected error", api or _method_name(handler))
            self._record(api, model_name, "INTERNAL", started)
            context.abort(grpc.StatusCode.INTERNAL, status_message(f"Internal error: {type(exc).__name__}: {exc}"))
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            # The client has given up: it sees DEADLINE_EXCEEDED whatever is sent now.
            self._record(api, model_name, "DEADLINE_EXCEEDED", started)
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        self._record(api, model_name, "OK", started)
        return response

    def _record(self, api, model_name, status, started):
        if self.metrics is None or api is None:
            return
        seconds = time.perf_counter() - started if status == "OK" else None
        self.metrics.record_request(model_name, api, status, seconds, entrypoint=ENTRYPOINT)


def _method_name(handler) -> str:
    return getattr(handler, "__name__", "call")
