"""Run the servicers' plain (thread) handlers on grpc.aio: a call takes a thread only once its message is in.

grpcio's thread-pool server hands a call to a pool thread as soon as the call opens, and that thread then
waits for the request message: 4 x CPUs calls whose message never comes hold every thread, and nobody
else is served. TF Serving's C++ async server gives a call a thread only once its message has arrived.
So does this: each unary-unary method is served on grpc.aio as a coroutine that awaits the message on
the event loop, at most `read_timeout` seconds from the call's start (`--grpc_message_read_timeout`;
then DEADLINE_EXCEEDED, as when a call's own deadline passes), and only then runs the handler (message
parsing included) in a bounded thread pool (`--grpc_max_threads`). An idle or slow call costs its
coroutine and the bytes it has sent, never a thread.

The handlers keep the sync API they were written for: `SyncContext` gives them abort, time_remaining,
set_code/set_details, is_active and add_callback.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent import futures

import grpc

from .. import access_log

log = logging.getLogger("server.grpc")

READ_TIMEOUT_MESSAGE = "Timed out waiting for the request message"


class _Abort(Exception):
    """What SyncContext.abort raises in the handler's thread; the coroutine aborts the call with it."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class SyncContext:
    """The part of grpc.ServicerContext the handlers use, over a grpc.aio context, from a pool thread."""

    __slots__ = ("_context", "_loop", "_callbacks", "_lock", "ended", "code", "details")

    def __init__(self, context, loop: asyncio.AbstractEventLoop):
        self._context, self._loop = context, loop
        self._callbacks: list = []
        self._lock = threading.Lock()
        self.ended = False
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None

    def time_remaining(self):
        return self._context.time_remaining()

    def abort(self, code: grpc.StatusCode, details: str = ""):
        raise _Abort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def invocation_metadata(self):
        return self._context.invocation_metadata()

    def peer(self) -> str:
        return self._context.peer()

    def is_active(self) -> bool:
        if self.ended:
            return False
        remaining = self._context.time_remaining()
        return remaining is None or remaining > 0

    def add_callback(self, callback) -> bool:
        with self._lock:
            if not self.ended:
                self._callbacks.append(callback)
                return True
        return False

    def end(self) -> None:
        """The call is over (answered, cancelled, timed out): run the callbacks, once."""
        with self._lock:
            if self.ended:
                return
            self.ended = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a callback's failure is its own
                log.exception("gRPC call callback failed")


class UndecodableRequest(Exception):
    """The request bytes are not the method's message: INTERNAL, as grpcio's and TF Serving's gRPC."""


def _run(handler, deserializer, raw: bytes, context: SyncContext):
    if deserializer is not None:
        try:
            request = deserializer(raw)
        except Exception as exc:  # noqa: BLE001 - whatever the parser says, one line and INTERNAL
            raise UndecodableRequest(" ".join(str(exc).split())) from None
    else:
        request = raw
    return handler(request, context)


def unary_on_aio(method: grpc.RpcMethodHandler, executor: futures.Executor,
                 read_timeout: float | None, name: str = "") -> grpc.RpcMethodHandler:
    """A unary-unary sync handler -> a grpc.aio handler that reads the message first (see the module);
    `name` ("/package.Service/Method") is what the access log, when there is one, calls it."""
    handler, deserializer = access_log.wrap_grpc(method.unary_unary, name), method.request_deserializer

    async def serve(messages, context):
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(read_timeout):
                raw = await messages.__anext__()
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, READ_TIMEOUT_MESSAGE)
        except StopAsyncIteration:   # half-closed without a message (grpcio's answer for it)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Did not read exactly one request!")
        sync = SyncContext(context, loop)
        try:
            response = await loop.run_in_executor(executor, _run, handler, deserializer, raw, sync)
        except _Abort as abort:
            await context.abort(abort.code, abort.details)
        except UndecodableRequest as exc:
            log.warning("gRPC request that is not a valid protobuf message -> INTERNAL: %s", exc)
            await context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        finally:
            sync.end()
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:   # what the client sees past its deadline anyway
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if sync.code is not None:
            context.set_code(sync.code)
        if sync.details is not None:
            context.set_details(sync.details)
        return response

    # Raw bytes in: the message is parsed in the pool thread, not on the event loop.
    return grpc.stream_unary_rpc_method_handler(serve, request_deserializer=None,
                                                response_serializer=method.response_serializer)


def _on_aio(method, executor, read_timeout, name: str):
    if method is None or method.request_streaming or method.response_streaming:
        return method
    return unary_on_aio(method, executor, read_timeout, name)


class _OnAio(grpc.GenericRpcHandler):
    """A generic handler whose unary-unary methods are served as `unary_on_aio` says."""

    def __init__(self, inner: grpc.GenericRpcHandler, executor: futures.Executor, read_timeout: float | None):
        self._inner, self._executor, self._read_timeout = inner, executor, read_timeout
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}   # only methods the inner handler serves

    def service(self, handler_call_details):
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            wrapped = _on_aio(self._inner.service(handler_call_details), self._executor, self._read_timeout, method)
            if wrapped is not None:
                self._wrapped[method] = wrapped
        return wrapped


class Collector:
    """Stands in for a grpc.Server while the generated `add_*Servicer_to_server` functions and
    add_profiler_service register their handlers, then registers them on a grpc.aio server with their
    unary-unary methods served as `unary_on_aio` says."""

    def __init__(self):
        self.services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        self.generic: list[grpc.GenericRpcHandler] = []

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.services.setdefault(service, {}).update(handlers)

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.generic.extend(handlers)

    def register_on(self, server, executor: futures.Executor, read_timeout: float | None) -> None:
        for service, methods in self.services.items():
            server.add_registered_method_handlers(
                service, {name: _on_aio(method, executor, read_timeout, f"/{service}/{name}")
                          for name, method in methods.items()})
        server.add_generic_rpc_handlers(tuple(_OnAio(h, executor, read_timeout) for h in self.generic))
