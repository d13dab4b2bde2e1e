"""The REST app under granian's RSGI interface: bodies read on the event loop, handlers in a bounded pool.

Under WSGI a request takes one of granian's blocking threads before its body has arrived, so a client
that sends headers and then waits holds that thread (with --rest_api_num_threads=1, the whole worker)
for as long as it likes. Here, as in TF Serving's HTTP layer (libevent reads the whole request before
a handler thread is taken), the body is read asynchronously, within a deadline, and only a request
whose body has fully arrived runs, in one of `threads` threads, through the same WSGI app as before
(the answers are the same bytes). The bodies buffered at once are bounded by a byte budget: a request
waits for its share (at no cost but its connection) before its body is read.
"""
from __future__ import annotations

import asyncio
import io
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from .. import access_log
from .app import BodyTooLarge, error_body

log = logging.getLogger("server.rest")

_JSON = [("content-type", "application/json"), ("connection", "close")]

# With one request thread, bodies longer than this run in a thread of their own, not on the event loop
# (a single image is a few KB, 100 images about 0.5 MB; a request of the most elements allowed, MBs).
LARGE_BODY = 1 << 20


class ByteBudget:
    """At most `capacity` bytes held at once by the requests of one event loop (0 = no bound).

    A request asks for its body's size (the body limit when the size is unknown) and waits, in arrival
    order, until that much is free; one larger than the whole budget is given all of it alone. A small
    one (at most `small` bytes) that fits in what is free goes ahead of the waiting line: a status GET or
    a single image is not held behind bodies of many MB (those wait for each other, as before).
    """

    def __init__(self, capacity: int, small: int = 0):
        self.capacity = capacity
        self.free = capacity
        self.small = small
        self._waiting: list[tuple[int, asyncio.Future]] = []

    async def take(self, size: int) -> int:
        if not self.capacity:
            return 0
        size = min(size, self.capacity)
        if size <= self.free and (not self._waiting or size <= self.small):
            self.free -= size
            return size
        future = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiting.append(entry)
        try:
            await future
        except BaseException:
            if entry in self._waiting:
                self._waiting.remove(entry)
            elif not future.cancelled():   # granted just as it was cancelled: give it back
                self.give(size)
            raise
        return size

    def give(self, size: int) -> None:
        if not size:
            return
        self.free += size
        while self._waiting and self._waiting[0][0] <= self.free:
            size, future = self._waiting.pop(0)
            if not future.done():
                self.free -= size
                future.set_result(None)


class RsgiAdapter:
    """granian RSGI app around a WSGI app (rest.app.create_app's).

    `threads`: handler threads (--rest_api_num_threads); `body_timeout_s`: time a request's whole body
    may take to arrive, from its headers (--rest_api_body_timeout_in_ms; then 408 and the connection is
    closed); `max_body`: --rest_api_max_body_bytes (a declared longer body is not read: the app answers
    413); `max_buffered`: bytes of bodies buffered or in handlers at once (--rest_api_max_buffered_bytes).
    """

    def __init__(self, wsgi_app, threads: int, body_timeout_s: float, max_body: int, max_buffered: int,
                 server_port: int = 0):
        self.wsgi_app = wsgi_app
        self.responder = getattr(wsgi_app, "responder", None)   # rest.app.ServingApp's shortcut, if on
        # One thread: the app runs on the event loop's own thread (no hand-over to another thread and
        # back, measured faster; the loop then waits, as that one thread would, while granian's own
        # threads keep reading other requests), except a body over LARGE_BODY bytes, which runs in one
        # thread of its own: a request that parses for a second does not hold up the small ones.
        # More threads: a pool of that many runs every request.
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rest") if threads > 1 else None
        self.large = ThreadPoolExecutor(1, thread_name_prefix="rest-large") if threads == 1 else None
        self.body_timeout_s = body_timeout_s or None
        self.max_body = max_body
        self.budget = ByteBudget(max_buffered, small=LARGE_BODY)
        self.server_port = str(server_port)

    def __rsgi_init__(self, loop) -> None:
        self.loop = loop

    def __rsgi_del__(self, loop) -> None:
        for pool in (self.pool, self.large):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    async def __rsgi__(self, scope, protocol) -> None:
        if scope.proto != "http":      # no websockets here
            return
        headers = scope.headers
        length_text = headers.get("content-length")
        chunked = length_text is None and "chunked" in (headers.get("transfer-encoding") or "").lower()
        if length_text is not None and not length_text.isdigit():
            protocol.response_bytes(400, _JSON, error_body("Invalid Content-Length"))
            return
        length = int(length_text) if length_text else 0
        refused = bool(self.max_body) and length > self.max_body   # the app answers 413 without the body
        wanted = (self.max_body or length) + 1 if chunked else (0 if refused else length)
        reserved = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                if wanted:
                    reserved = await self.budget.take(wanted)
                body = (await self._read_chunked(protocol) if chunked
                        else await protocol() if length and not refused else b"")
        except TimeoutError:
            self.budget.give(reserved)
            log.info("%s %s -> 408: the body did not arrive within %s s", scope.method, scope.path,
                     self.body_timeout_s)
            protocol.response_bytes(408, _JSON, error_body(
                f"Request body not received within {self.body_timeout_s:g} s (--rest_api_body_timeout_in_ms)"))
            return
        except BaseException:
            self.budget.give(reserved)
            raise
        try:
            pool = self.pool if self.pool is not None else self.large if len(body) > LARGE_BODY else None
            if pool is None:
                status, out_headers, payload = self._run(scope, headers, body, length_text, chunked, refused)
            else:
                status, out_headers, payload = await self.loop.run_in_executor(
                    pool, self._run, scope, headers, body, length_text, chunked, refused)
        finally:
            self.budget.give(reserved)
        if refused or chunked and len(body) > (self.max_body or len(body)):
            out_headers.append(("connection", "close"))   # the rest of the body is never read
        protocol.response_bytes(status, out_headers, payload)

    async def _read_chunked(self, protocol) -> bytes:
        """A body of unknown length, up to max_body + 1 bytes (the app refuses a longer one)."""
        chunks, total, cap = [], 0, self.max_body + 1 if self.max_body else 0
        async for chunk in protocol:
            chunks.append(chunk)
            total += len(chunk)
            if cap and total >= cap:
                break
        return b"".join(chunks)[:cap] if cap else b"".join(chunks)

    def _environ(self, scope, headers, body: bytes, length_text, chunked: bool) -> dict:
        path = unquote_to_bytes(scope.path).decode("latin-1")
        environ = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": self.server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": scope.client.rsplit(":", 1)[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                environ[key] = length_text
                continue
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = environ[key] + "," + value if key in environ else value
        if chunked:
            environ.pop("CONTENT_LENGTH", None)
        return environ

    def _run(self, scope, headers, body: bytes, length_text, chunked: bool, refused: bool):
        """The answer to a request whose body is in: (status, headers, body)."""
        responder, path = self.responder, scope.path
        if (responder is not None and length_text is not None and scope.method == "POST" and "%" not in path
                and path.isascii()):
            # ServingApp.wsgi_app's shortcut for a POST of known length, without building a WSGI environ.
            def read_body() -> bytes:
                if refused:
                    raise BodyTooLarge
                return body
            access_log.note_client(scope.client)   # for the access log's line, when it is on
            status, payload, out_headers = responder("POST", path, read_body)
            return status, [*out_headers, ("Content-Length", str(len(payload)))], payload   # as the WSGI shortcut
        return self._call(self._environ(scope, headers, body, length_text, chunked))

    def _call(self, environ: dict):
        """The WSGI app, in a handler thread: (status, headers, body)."""
        started: list[Any] = []

        def start_response(status, headers, exc_info=None):
            started[:] = [status, headers]

        result = self.wsgi_app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return int(status[:3]), list(headers), payload
