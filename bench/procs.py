"""The systems under test as processes: start one, wait until it can answer, read what it costs
(CPU seconds and peak resident memory over its whole process tree), stop it."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from bench.common import MODEL_NAME, BenchError

ROOT = pathlib.Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_child(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a helper process that runs until its standard input closes: close it, wait `timeout`
    seconds, then kill it."""
    if proc.poll() is not None:
        return
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def peak_rss_mib(root: int) -> float | None:
    """Sum of VmHWM (peak resident set) over the process and its descendants."""
    total, seen = 0, False
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
                        seen = True
        except OSError:
            pass
    return total / 1024 if seen else None


def reset_peak_rss(root: int) -> None:
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")                 # resets VmHWM to the current RSS
        except OSError:
            pass


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by the process and its live descendants."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


@dataclass(frozen=True)
class Readiness:
    """How to tell that a system can answer predict requests: a GET and a test of its answer."""
    path: str
    ok: Callable[[bytes], bool]


# TF Serving's (and this server's, and the naive demo's) model status API: a version AVAILABLE.
TF_SERVING_READY = Readiness(f"/v1/models/{MODEL_NAME}", lambda body: b"AVAILABLE" in body)


class ServerProcess:
    def __init__(self, system: str, cmd: list[str], port: int, log_path: pathlib.Path,
                 ready: Readiness = TF_SERVING_READY, env: dict | None = None, cwd: pathlib.Path = ROOT):
        self.system, self.cmd, self.port, self.log_path, self.cwd = system, cmd, port, log_path, cwd
        self.ready, self.env = ready, env or {}
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def start(self, timeout: float = 240.0) -> None:
        t0 = time.monotonic()
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}{self.ready.path}"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.system} exited with {self.proc.returncode} while starting:\n"
                                 + self.log_tail())
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200 and self.ready.ok(r.read()):
                        self.startup_s = time.monotonic() - t0
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.system} not ready after {timeout:.0f} s:\n" + self.log_tail())

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        try:  # children that left the group's leader behind (a peer's worker processes)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def check_answer(port: int, body_file: pathlib.Path, rows: int) -> None:
    """One request before the load: the answer must be 200 with `rows` rows of 10 scores."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}:predict",
                                 data=body_file.read_bytes(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            doc = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise BenchError(f"predict answered {e.code}: {e.read()[:500]!r}") from None
    values = doc.get("predictions", doc.get("outputs"))
    if not isinstance(values, list) or len(values) != rows or len(values[0]) != 10:
        raise BenchError(f"unexpected predict answer: {json.dumps(doc)[:300]}")
