"""Start `python -m server` as a real process on a free loopback port, for the tests: the tests' one home
for a free port and for stopping a server with everything it started."""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> int | None:
    """SIGTERM to the process group of `proc` (started with start_new_session=True), SIGKILL after
    `timeout` seconds; returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    return proc.returncode


class ServerProcess:
    """`with ServerProcess(flags) as s:` runs the server until the block ends, whatever happens."""

    def __init__(self, flags: list[str], port: int | None = None, env: dict | None = None, grpc: bool = False):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # gRPC on a free port of its own when asked for (`grpc_target`), else off (TF Serving's default 8500
        # would have every test server listen there).
        self.grpc_port = free_port() if grpc else 0
        self.grpc_target = f"127.0.0.1:{self.grpc_port}" if grpc else None
        given = any(f.startswith("--port=") for f in flags)
        self.flags = [f"--rest_api_port={self.port}", "--rest_api_host=127.0.0.1",
                      *([] if given else [f"--port={self.grpc_port}"]), *flags]
        self.env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
        self._log = tempfile.NamedTemporaryFile(prefix="server-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServerProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "server", *self.flags], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        os.unlink(self._log.name)

    def stop(self) -> int | None:
        return stop_group(self.proc, timeout=20) if self.proc is not None else None

    def log_lines(self) -> list[str]:
        return pathlib.Path(self._log.name).read_text(errors="replace").splitlines()

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n" + "\n".join(self.log_lines()[-30:]))

    def status(self, name: str) -> dict | None:
        try:
            return requests.get(f"{self.url}/v1/models/{name}", timeout=5).json()
        except (requests.ConnectionError, requests.Timeout, ValueError):
            return None

    def wait_available(self, name: str, version: str | None = None, timeout: float = 120,
                       every_version: bool = False) -> dict:
        """Until `version` (or any version; with every_version, all that it lists) of `name` is AVAILABLE."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            doc = self.status(name) or {}
            statuses = doc.get("model_version_status", [])
            if every_version:
                if statuses and all(s.get("state") == "AVAILABLE" for s in statuses):
                    return doc
            elif any(s.get("state") == "AVAILABLE" and version in (None, s.get("version")) for s in statuses):
                return doc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not AVAILABLE after {timeout} s: {doc}\n"
                                   + "\n".join(self.log_lines()[-30:]))
            time.sleep(0.1)

    def wait_log(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the server log:\n" + "\n".join(self.log_lines()[-30:]))
            time.sleep(0.1)
