"""What a container stop does to the server: SIGTERM to its main process only (docker stop and Kubernetes
signal PID 1, not a process group) lets the requests in flight finish, then the process exits 0.
Also deploy/ready.py, the image's readiness check, against a real server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import requests

from tests.serverproc import ROOT, ServerProcess, free_port

MODEL = "half_plus_two"


def test_sigterm_lets_requests_in_flight_finish(testdata, tmp_path):
    # Requests wait up to 3 s in the batcher for company: they are in flight when SIGTERM comes.
    (tmp_path / "batching.txt").write_text("max_batch_size { value: 128 }\n"
                                           "batch_timeout_micros { value: 3000000 }\n")
    flags = [f"--model_name={MODEL}", f"--model_base_path={testdata / 'saved_model_half_plus_two_2_versions'}",
             f"--batching_parameters_file={tmp_path / 'batching.txt'}"]
    with ServerProcess(flags) as server:
        server.wait_available(MODEL)
        answers: list = []

        def predict():
            try:
                r = requests.post(f"{server.url}/v1/models/{MODEL}:predict", data='{"instances": [1.0]}', timeout=30)
                answers.append((r.status_code, r.json()))
            except requests.RequestException as exc:
                answers.append(("failed", repr(exc)))

        clients = [threading.Thread(target=predict) for _ in range(4)]
        for c in clients:
            c.start()
        time.sleep(1.0)
        assert not answers, "answered before the batch timeout: nothing was in flight"
        os.kill(server.proc.pid, signal.SIGTERM)
        for c in clients:
            c.join(30)
        assert server.proc.wait(30) == 0
        assert answers == [(200, {"predictions": [2.5]})] * 4
        log = "\n".join(server.log_lines())
        assert "Unloaded servable version" in log


def _ready(port: int, model: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "ready.py"), str(port), model],
                          check=False, capture_output=True, text=True, timeout=30)


def test_ready_check_asks_for_an_available_version(testdata):
    nothing = free_port()
    result = _ready(nothing, MODEL)
    assert result.returncode == 1 and "Connection refused" in result.stdout
    flags = [f"--model_name={MODEL}", f"--model_base_path={testdata / 'saved_model_half_plus_two_2_versions'}"]
    with ServerProcess(flags) as server:
        server.wait_available(MODEL)
        result = _ready(server.port, MODEL)
        assert result.returncode == 0, result.stdout
        assert result.stdout.strip() == f"{MODEL} version(s) 124 AVAILABLE"
        result = _ready(server.port, "CNN")
        assert result.returncode == 1 and "HTTP 404" in result.stdout
    assert _ready(server.port, MODEL).returncode == 1  # stopped


def test_ready_check_is_not_fooled_by_a_failed_load(testdata):
    """GET /v1/models/NAME answers 200 for a version that failed to load (state END, with the error):
    an httpGet probe would call that pod ready."""
    flags = ["--model_name=bad", f"--model_base_path={testdata / 'bad_half_plus_two'}", "--max_num_load_retries=0"]
    with ServerProcess(flags) as server:
        deadline = time.monotonic() + 120
        def states():
            return [v["state"] for v in (server.status("bad") or {}).get("model_version_status", [])]
        while states() != ["END"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert states() == ["END"]
        assert requests.get(f"{server.url}/v1/models/bad", timeout=10).status_code == 200
        result = _ready(server.port, "bad")
        assert result.returncode == 1 and "no version AVAILABLE" in result.stdout, result.stdout
