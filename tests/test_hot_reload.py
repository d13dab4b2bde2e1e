"""Hot reload over HTTP: a real server swaps versions under load with no failed request, and a broken
new version never takes over. (The same rules in-process, with many more cases: test_lifecycle.py.)"""
import shutil
import threading
import time

import pytest
import requests

from .serverproc import ServerProcess

pytestmark = pytest.mark.slow

HALF_PLUS_TWO = "saved_model_half_plus_two_2_versions/00000123"


def publish(src, base, version):
    """Copy a version in beside the base path, then rename it in: the server never sees half a folder."""
    tmp = base / f".tmp-{version}"
    shutil.copytree(src, tmp)
    tmp.rename(base / str(version))


def states(server, name):
    doc = server.status(name) or {}
    return {s["version"]: (s["state"], s["status"].get("error_message", ""))
            for s in doc.get("model_version_status", [])}


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class Load:
    """A few client threads sending predict requests until stopped; every answer is recorded."""

    def __init__(self, url, threads=4, max_seconds=60):
        self.url, self.stop_at = url, time.monotonic() + max_seconds
        self.ok, self.failures, self.versions_seen = 0, [], set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        with requests.Session() as s:
            while not self._stop.is_set() and time.monotonic() < self.stop_at:
                try:
                    r = s.post(self.url, data=b'{"instances": [[1.0], [3.0]]}', timeout=10)
                    good = r.status_code == 200 and r.json() == {"predictions": [[2.5], [3.5]]}
                except requests.RequestException as exc:
                    good, r = False, exc
                with self._lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failures.append(getattr(r, "text", repr(r)))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()


def test_swap_under_load_and_broken_version(testdata, tmp_path):
    base = tmp_path / "half_plus_two"
    base.mkdir()
    publish(testdata / HALF_PLUS_TWO, base, 1)
    with ServerProcess(["--model_name=hpt", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1",
                        "--rest_api_num_threads=4", "--max_num_load_retries=0"]) as server:
        server.wait_available("hpt", "1")
        with Load(f"{server.url}/v1/models/hpt:predict") as load:
            wait_for(lambda: load.ok > 20)
            publish(testdata / HALF_PLUS_TWO, base, 2)
            # Version 2 loads first; only then does version 1 unload.
            wait_for(lambda: states(server, "hpt").get("1", ("",))[0] == "END"
                     and states(server, "hpt").get("2", ("",))[0] == "AVAILABLE")
            served_before = load.ok
            wait_for(lambda: load.ok > served_before + 20)

            # A broken version 3 (no variables) fails to load, says why, and version 2 keeps serving.
            broken = base / ".tmp-3"
            shutil.copytree(testdata / HALF_PLUS_TWO, broken)
            shutil.rmtree(broken / "variables")
            broken.rename(base / "3")
            wait_for(lambda: states(server, "hpt").get("3", ("",))[0] == "END")
            served_before = load.ok
            wait_for(lambda: load.ok > served_before + 20)
        assert load.failures == [], load.failures[:3]
        s = states(server, "hpt")
        assert s["2"][0] == "AVAILABLE" and s["3"][1], s
        r = requests.get(f"{server.url}/v1/models/hpt/metadata").json()
        assert r["model_spec"]["version"] == "2"
        server.wait_log("Successfully loaded servable version hpt 2")


def test_config_file_reload_adds_models_and_labels(testdata, tmp_path):
    cfg = tmp_path / "models.config"

    def write(*models):
        cfg.write_text("model_config_list {\n" + "\n".join(models) + "\n}\n")

    two_versions = (f'config {{ name: "hpt" base_path: "{testdata}/saved_model_half_plus_two_2_versions" '
                    f'model_platform: "tensorflow" model_version_policy {{ all {{}} }} %s }}')
    write(two_versions % 'version_labels { key: "stable" value: 123 }')
    with ServerProcess([f"--model_config_file={cfg}", "--model_config_file_poll_wait_seconds=1"]) as server:
        server.wait_available("hpt", "124")
        assert [s["version"] for s in server.status("hpt")["model_version_status"]] == ["124", "123"]
        label = requests.get(f"{server.url}/v1/models/hpt/labels/stable").json()
        assert [s["version"] for s in label["model_version_status"]] == ["123"]
        # Move the label and add a model, without a restart.
        write(two_versions % 'version_labels { key: "stable" value: 124 }',
              f'config {{ name: "tf2" base_path: "{testdata}/saved_model_half_plus_two_tf2_cpu" '
              f'model_platform: "tensorflow" }}')
        server.wait_available("tf2", timeout=60)
        wait_for(lambda: [s["version"] for s in requests.get(
            f"{server.url}/v1/models/hpt/labels/stable").json()["model_version_status"]] == ["124"])
        r = requests.post(f"{server.url}/v1/models/tf2:predict", json={"instances": [3.0]})
        assert r.json() == {"predictions": [3.5]}
        # An invalid file is logged and the running config stays.
        cfg.write_text("model_config_list { config { nme: 'x' } }")
        server.wait_log("Invalid ModelServerConfig", timeout=20)
        r = requests.post(f"{server.url}/v1/models/hpt/labels/stable:predict", json={"instances": [[1.0]]})
        assert r.json() == {"predictions": [[2.5]]}
