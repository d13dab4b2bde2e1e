"""Faults a production server meets, survived by `python -m server` as a real process over loopback.

- a worker killed with SIGKILL under load (--workers 2): the other keeps serving, the dead one is
  replaced, no request hangs;
- SIGTERM under load: requests in flight finish, later connections are refused, exit status 0;
- the model folder deleted, or replaced by a file, while serving: the loaded version keeps serving;
  a new version folder of garbage: its error shows in the status API, the loaded version serves on;
- a version folder that appears half-written and is completed later: it loads once complete;
- a re-read config file that is broken: the models served stay, the error is logged, a fixed
  file is applied.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import threading
import time

import pytest
import requests

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

BODY = json.dumps({"instances": [1.0, 2.0, 5.0]}).encode()
ANSWER = [2.5, 3.0, 4.5]


class Load:
    """`threads` clients sending predict requests until stopped; every outcome is counted."""

    def __init__(self, url: str, threads: int = 4, timeout: float = 30):
        self.url, self.timeout = url, timeout
        self.ok = 0
        self.http_errors: list[str] = []
        self.conn_errors: list[str] = []
        self.hung: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        assert not any(t.is_alive() for t in self._threads), "a client thread never came back"

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                r = session.post(self.url, data=BODY, timeout=self.timeout)
                with self._lock:
                    if r.status_code == 200 and r.json()["predictions"] == ANSWER:
                        self.ok += 1
                    else:
                        self.http_errors.append(f"{r.status_code} {r.text[:200]}")
            except requests.Timeout as e:
                with self._lock:
                    self.hung.append(str(e))
            except requests.ConnectionError as e:
                with self._lock:
                    self.conn_errors.append(str(e)[:200])
                session = requests.Session()
                time.sleep(0.05)

    def wait_ok(self, more: int, timeout: float = 120) -> None:
        target, deadline = self.ok + more, time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"only {self.ok} answers of {target}"
            time.sleep(0.05)


def predict(server: ServerProcess, model: str = "hp2", version: str = "") -> requests.Response:
    where = f"/versions/{version}" if version else ""
    return requests.post(f"{server.url}/v1/models/{model}{where}:predict", data=BODY, timeout=30)


def worker_pids(server: ServerProcess) -> dict[str, int]:
    """granian's log: "Spawning worker-N with PID: P" (the latest PID for each worker)."""
    pids = {}
    for line in server.log_lines():
        m = re.search(r"Spawning (worker-\d+) with PID: (\d+)", line)
        if m:
            pids[m.group(1)] = int(m.group(2))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def copy_model(testdata, tmp_path, versions=("00000123",)):
    base = tmp_path / "hp2"
    base.mkdir()
    for v in versions:
        shutil.copytree(testdata / "saved_model_half_plus_two_2_versions" / v, base / v)
    return base


def test_killed_worker_is_replaced(testdata, tmp_path):
    base = copy_model(testdata, tmp_path)
    with ServerProcess([f"--model_base_path={base}", "--model_name=hp2", "--workers=2",
                        "--file_system_poll_wait_seconds=0"]) as s:
        s.wait_available("hp2")
        deadline = time.monotonic() + 180
        while len(s.log_lines()) and sum("Successfully loaded" in line for line in s.log_lines()) < 2:
            assert time.monotonic() < deadline, "\n".join(s.log_lines()[-30:])
            time.sleep(0.2)
        pids = worker_pids(s)
        assert len(pids) == 2, pids
        with Load(f"{s.url}/v1/models/hp2:predict") as load:
            load.wait_ok(50)
            victim = pids["worker-2"]
            os.kill(victim, signal.SIGKILL)
            # The other worker answers while the dead one is replaced (a new PID, models loaded again).
            load.wait_ok(100)
            while worker_pids(s).get("worker-2") in (None, victim):
                assert time.monotonic() < deadline + 120, "\n".join(s.log_lines()[-30:])
                time.sleep(0.2)
            assert s.proc.poll() is None, "the server exited"
            new = worker_pids(s)["worker-2"]
            while sum("Successfully loaded" in line for line in s.log_lines()) < 3:
                assert time.monotonic() < deadline + 240, "\n".join(s.log_lines()[-30:])
                time.sleep(0.2)
            # Now the first worker dies too: the replacement serves.
            os.kill(pids["worker-1"], signal.SIGKILL)
            load.wait_ok(100)
        assert alive(new) and not alive(victim)
        assert not load.hung, load.hung[:3]
        assert not load.http_errors, load.http_errors[:3]
        # Only requests on the killed workers' connections may fail, and only by a reset or refusal.
        assert len(load.conn_errors) <= 50, load.conn_errors[:3]
        assert predict(s).json()["predictions"] == ANSWER
        assert any("Unexpected exit from worker-2" in line for line in s.log_lines())


def test_sigterm_under_load_finishes_in_flight_requests(testdata, tmp_path):
    base = copy_model(testdata, tmp_path)
    with ServerProcess([f"--model_base_path={base}", "--model_name=hp2", "--rest_api_num_threads=2",
                        "--file_system_poll_wait_seconds=0"]) as s:
        s.wait_available("hp2")
        with Load(f"{s.url}/v1/models/hp2:predict", threads=8) as load:
            load.wait_ok(100)
            s.proc.send_signal(signal.SIGTERM)
            code = s.proc.wait(timeout=60)
        assert code == 0, "\n".join(s.log_lines()[-30:])
        assert not load.hung, load.hung[:3]
        # Every request the server took in got its answer: no 5xx, no half answer, no reset mid-request.
        assert not load.http_errors, load.http_errors[:3]
        # The clients keep their connections alive: when the server closes an idle kept-alive connection
        # just as a client sends its next request on it (a race HTTP/1.1 allows, RFC 9112 9.3.1), that
        # client sees "closed without response" for a request the server never read. At most once per
        # client; any other connection error is a refused new connection.
        closed = [e for e in load.conn_errors if "RemoteDisconnected" in e]
        assert len(closed) <= 8, closed[:3]
        assert all("refused" in e or "Max retries" in e for e in load.conn_errors if e not in closed), \
            load.conn_errors[:3]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", s.port), timeout=2):
            pass


def _status(s: ServerProcess) -> dict[str, dict]:
    return {v["version"]: v for v in (s.status("hp2") or {}).get("model_version_status", [])}


def test_model_folder_faults(testdata, tmp_path):
    base = copy_model(testdata, tmp_path)
    # No load retries (TF Serving retries a failed load 5 times, a minute apart): the failure shows at once.
    with ServerProcess([f"--model_base_path={base}", "--model_name=hp2", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"]) as s:
        s.wait_available("hp2", "123")

        # A new version of garbage: its error in the status API, version 123 serves on.
        (base / "00000124").mkdir()
        (base / "00000124" / "saved_model.pb").write_bytes(b"\x00garbage" * 100)
        deadline = time.monotonic() + 60
        while _status(s).get("124", {}).get("state") != "END":
            assert time.monotonic() < deadline, _status(s)
            time.sleep(0.2)
        status = _status(s)
        assert status["124"]["status"]["error_code"] != "OK" and status["124"]["status"]["error_message"], status
        assert status["123"]["state"] == "AVAILABLE", status
        assert predict(s).json()["predictions"] == ANSWER
        shutil.rmtree(base / "00000124")

        # The version's own files replaced by garbage while it is loaded: it serves from memory.
        (base / "00000123" / "saved_model.pb").write_bytes(b"garbage")
        time.sleep(2.5)  # two polls
        assert predict(s).json()["predictions"] == ANSWER
        assert _status(s)["123"]["state"] == "AVAILABLE"

        # The whole model folder deleted, then replaced by a file: the loaded version keeps serving.
        shutil.rmtree(base)
        s.wait_log("Cannot list base path")
        time.sleep(2.5)
        assert predict(s).json()["predictions"] == ANSWER
        base.write_bytes(b"not a folder")
        time.sleep(2.5)
        assert predict(s).json()["predictions"] == ANSWER
        assert _status(s)["123"]["state"] == "AVAILABLE"


def test_half_written_version_loads_once_complete(testdata, tmp_path):
    base = copy_model(testdata, tmp_path)
    # No load retries (TF Serving retries a failed load 5 times, a minute apart): the failure shows at once.
    with ServerProcess([f"--model_base_path={base}", "--model_name=hp2", "--file_system_poll_wait_seconds=1",
                        "--max_num_load_retries=0"]) as s:
        s.wait_available("hp2", "123")
        source = testdata / "saved_model_half_plus_two_2_versions" / "00000124"
        half = base / "00000124"
        # Written file by file, as a copy does: the variables first, the graph last.
        shutil.copytree(source / "variables", half / "variables")
        deadline = time.monotonic() + 60
        while _status(s).get("124", {}).get("state") != "END":
            assert time.monotonic() < deadline, _status(s)
            time.sleep(0.2)
        assert predict(s).json()["predictions"] == ANSWER  # 123 serves meanwhile
        for f in source.iterdir():
            if f.is_file():
                shutil.copy2(f, half / f.name)
        if (source / "assets").is_dir():
            shutil.copytree(source / "assets", half / "assets")
        s.wait_available("hp2", "124", timeout=60)
        r = predict(s, version="124")
        assert r.status_code == 200 and r.json()["predictions"] == ANSWER


CONFIG = """model_config_list {
  config { name: "hp2" base_path: "%s" model_platform: "tensorflow" }
}
"""


def test_broken_config_file_on_reload(testdata, tmp_path):
    base = copy_model(testdata, tmp_path)
    config = tmp_path / "models.config"
    config.write_text(CONFIG % base)
    with ServerProcess([f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
                        "--file_system_poll_wait_seconds=1"]) as s:
        s.wait_available("hp2", "123")
        lines = len(s.log_lines())
        config.write_text("model_config_list { config { name: ")  # cut while being written
        deadline = time.monotonic() + 30
        while not any("Invalid model config file" in line for line in s.log_lines()[lines:]):
            assert time.monotonic() < deadline, "\n".join(s.log_lines()[-20:])
            time.sleep(0.2)
        time.sleep(2.5)
        assert s.proc.poll() is None, "\n".join(s.log_lines()[-20:])
        assert predict(s).json()["predictions"] == ANSWER
        assert _status(s)["123"]["state"] == "AVAILABLE"
        # Fixed: a second model appears, the first serves on.
        second = '  config { name: "hp2b" base_path: "%s" model_platform: "tensorflow" }\n}' % base
        config.write_text((CONFIG % base).replace("}\n}", "}\n" + second))
        s.wait_available("hp2b", "123", timeout=60)
        assert predict(s, model="hp2b").json()["predictions"] == ANSWER
        assert predict(s).json()["predictions"] == ANSWER
