"""Hostile REST clients against a real server process, each beside a well-behaved client whose every
request must succeed within a second while the hostile one misbehaves (issue 20).

One server serves all cases (starting one takes most of this file's time), with short timeouts and
small limits so that each case passes them within seconds."""
from __future__ import annotations

import json
import pathlib
import resource
import socket
import threading
import time

import pytest
import requests

from tests.conftest import TESTDATA
from tests.serverproc import ServerProcess

MODEL = TESTDATA / "saved_model_half_plus_two_cpu"
BODY_TIMEOUT_S = 2.0
IDLE_TIMEOUT_S = 3.0
MAX_BODY = 256 << 10
MAX_BUFFERED = 1 << 20
PREDICT = "/v1/models/half_plus_two:predict"
pytestmark = pytest.mark.skipif(not MODEL.is_dir(), reason=f"no test model at {MODEL}")


@pytest.fixture(scope="module")
def server():
    flags = ["--model_name=half_plus_two", f"--model_base_path={MODEL}",
             f"--rest_api_body_timeout_in_ms={int(BODY_TIMEOUT_S * 1000)}",
             f"--rest_api_idle_timeout_in_ms={int(IDLE_TIMEOUT_S * 1000)}",
             f"--rest_api_max_body_bytes={MAX_BODY}", f"--rest_api_max_buffered_bytes={MAX_BUFFERED}"]
    with ServerProcess(flags) as s:
        s.wait_available("half_plus_two")
        yield s


class GoodClient:
    """Status and predict requests, one after the other on a fresh connection each, until stopped; every
    one must answer 200 with the right document within `within` seconds."""

    def __init__(self, url: str, within: float = 1.0):
        self.url, self.done, self.failures, self.count = url, threading.Event(), [], 0
        self.within = within
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            for method, path, body, want in (
                    ("GET", "/v1/models/half_plus_two", None, "AVAILABLE"),
                    ("POST", PREDICT, '{"instances": [1.0, 3.0]}', '"predictions": [2.5, 3.5'),
            ):
                started = time.monotonic()
                try:
                    r = requests.request(method, self.url + path, data=body, timeout=self.within)
                    took = time.monotonic() - started
                    text = " ".join(r.text.split()).replace("[ ", "[").replace(" ]", "]")
                    if r.status_code != 200 or want not in text or took > self.within:
                        self.failures.append(f"{method} {path}: {r.status_code} in {took:.2f} s: {r.text[:80]}")
                except requests.RequestException as exc:
                    self.failures.append(f"{method} {path}: {type(exc).__name__} after "
                                         f"{time.monotonic() - started:.2f} s")
                self.count += 1
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        deadline = time.monotonic() + 5   # a bad client that is done quickly: still four good requests
        while self.count < 4 and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)
        self.done.set()
        self.thread.join(5)
        if exc[0] is None:
            assert self.count >= 4, f"the good client made only {self.count} requests"
            assert not self.failures, self.failures


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (s from now)."""
    sock.settimeout(timeout)
    started, data = time.monotonic(), b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def _post_head(length: int) -> bytes:
    return (f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _assert_408(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in head.lower()
    assert "--rest_api_body_timeout_in_ms" in json.loads(body)["error"]


def test_unfinished_body_costs_only_its_connection(server):
    with GoodClient(server.url):
        bad = _connect(server)
        bad.sendall(_post_head(99) + b"{")
        answer, after = _read_all(bad, BODY_TIMEOUT_S + 5)
        bad.close()
    _assert_408(answer)
    assert after < BODY_TIMEOUT_S + 1.5


def test_body_trickled_past_the_timeout_is_cut_off(server):
    body = json.dumps({"instances": [1.0] * 200}).encode()
    with GoodClient(server.url):
        bad = _connect(server)
        bad.sendall(_post_head(len(body)))
        started, answer = time.monotonic(), b""
        bad.settimeout(0.01)
        for i in range(len(body)):           # one byte every 20 ms: 1.3 KB would take ~25 s
            try:
                bad.sendall(body[i:i + 1])
            except OSError:                  # closed by the server after its 408
                break
            try:
                answer += bad.recv(65536)
                if answer:
                    break
            except TimeoutError:
                pass
            if time.monotonic() - started > BODY_TIMEOUT_S + 3:
                break
            time.sleep(0.02)
        rest, _ = _read_all(bad, 5)
        bad.close()
    _assert_408(answer + rest)
    assert BODY_TIMEOUT_S - 0.2 < time.monotonic() - started < BODY_TIMEOUT_S + 3


def test_thousands_of_idle_connections(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3000      # granian's default stopped new clients at 2,048 (its backpressure: backlog // workers)
    if soft < wanted + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted + 200), hard))
    count = min(wanted, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200)
    idle = []
    try:
        with GoodClient(server.url):
            for _ in range(count):
                idle.append(_connect(server))
            time.sleep(1.0)
        assert len(idle) >= 2500, f"only {len(idle)} connections under the open-files limit"
        # The server closes a connection that sent nothing within --rest_api_idle_timeout_in_ms.
        time.sleep(IDLE_TIMEOUT_S + 0.5)
        for sock in (idle[0], idle[len(idle) // 2], idle[-1]):
            data, _ = _read_all(sock, 2)
            assert data == b""
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _body_of_size(size: int) -> bytes:
    """A valid predict body of exactly `size` bytes: instances of 0.0 padded with spaces."""
    head, tail = b'{"instances": [', b"]}"
    count = (size - len(head) - len(tail)) // 4
    body = head + b",".join([b"0.0"] * count) + tail
    return body[:-2] + b" " * (size - len(body)) + tail


def test_many_bodies_at_the_limit_in_parallel(server):
    body = _body_of_size(MAX_BODY)
    assert len(body) == MAX_BODY
    results, lock = [], threading.Lock()

    def hostile():
        try:
            r = requests.post(server.url + PREDICT, data=body, timeout=30)
            outcome = r.status_code
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        with lock:
            results.append(outcome)

    # 24 bodies of the limit at once: six times what --rest_api_max_buffered_bytes lets one worker hold.
    with GoodClient(server.url):
        threads = [threading.Thread(target=hostile) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
    assert results == [200] * 24, results
    # One byte over the limit: 413, the body unread, and the server still serves.
    r = requests.post(server.url + PREDICT, data=body + b" ", timeout=10)
    assert r.status_code == 413 and "--rest_api_max_body_bytes" in r.json()["error"]
    assert requests.get(server.url + "/v1/models/half_plus_two", timeout=1).status_code == 200


POD_MEMORY = 2 << 30   # deploy/kubernetes/deployment.yaml: limits.memory 2Gi


def _peak_rss(pid: int) -> int:
    """Largest resident set (VmHWM) of `pid` and the processes of its session, in bytes."""
    import os
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != os.getsid(pid):
                continue
            status = pathlib.Path(f"/proc/{entry}/status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def test_shipped_limits_fit_the_pod():
    """The default limits (the flags the shipped Deployment leaves alone): the most expensive bodies they allow,
    in parallel, keep the server's peak memory within the pod's limit while the good client is served."""
    from server.options import Options
    limits = Options()
    with ServerProcess(["--model_name=half_plus_two", f"--model_base_path={MODEL}"]) as server:
        server.wait_available("half_plus_two")
        numbers = _body_of_size(limits.rest_api_max_body_bytes)                # parsed whole, then refused
        elements = ('{"instances": [' + ",".join(["1.0"] * limits.max_request_elements) + "]}").encode()
        results, lock = [], threading.Lock()

        def hostile(body: bytes):
            try:
                outcome = requests.post(server.url + PREDICT, data=body, timeout=60).status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with lock:
                results.append(outcome)

        # Each of these requests parses for ~0.5-1 s (CPU, under the GIL) in the worker's thread for large
        # bodies; the good client's small requests run on the event loop meanwhile.
        with GoodClient(server.url):
            threads = [threading.Thread(target=hostile, args=(body,)) for body in [numbers] * 4 + [elements] * 2]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
        assert sorted(results, key=str) == [200, 200, 400, 400, 400, 400], results
        peak = _peak_rss(server.proc.pid)
        print(f"peak RSS of the server with the shipped limits: {peak / 2**20:.0f} MiB")
        assert peak < POD_MEMORY, f"peak RSS {peak / 2**30:.2f} GiB over the pod's 2 GiB"
