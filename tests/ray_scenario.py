"""This server on Ray Serve, on a real multi-node Ray cluster on this machine: the steps the tests check
and the docs show, each returning what it measured.

    python -m tests.ray_scenario --out docs/_static/ray      # record one run (results.json, results.txt)

The model is TF Serving's half_plus_two test model, served from a temporary base path that starts with
version 1 (the fixture's version 123); version 2 (its version 124) is copied in later. Every address is
127.0.0.1; every request loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Self

import requests

from tests.raycluster import LOOPBACK, RUNTIME_ENV, LocalRayCluster, is_loopback, listening_addresses
from tests.serverproc import ROOT, ServerProcess, free_port

FIXTURE = ROOT.parent / "shared" / "fixtures" / "tf_serving_testdata" / "saved_model_half_plus_two_2_versions"
MODEL = "half_plus_two"
APP = "tf_serving"
REPLICA, NODE = "x-serve-replica", "x-ray-node"

# The same requests to the single server and to the replicas: (method, path, body).
PARITY_REQUESTS = [
    ("GET", f"/v1/models/{MODEL}", None),
    ("GET", f"/v1/models/{MODEL}/metadata", None),
    ("POST", f"/v1/models/{MODEL}:predict", '{"instances": [[1.0], [2.0], [5.0]]}'),
    ("POST", f"/v1/models/{MODEL}:predict", '{"inputs": {"x": [[1.0], [2.0], [5.0]]}}'),
    ("POST", f"/v1/models/{MODEL}/versions/1:predict", '{"instances": [[1.0]]}'),
    ("POST", f"/v1/models/{MODEL}:regress", '{"signature_name": "regress_x_to_y", "examples": [{"x": 3.0}]}'),
    ("POST", f"/v1/models/{MODEL}:classify", '{"signature_name": "classify_x_to_y", "examples": [{"x": 3.0}]}'),
    ("POST", f"/v1/models/{MODEL}:predict", '{"instances": [["one"]]}'),
    ("POST", f"/v1/models/{MODEL}:predict", '{"instances": [1.0], "inputs": [1.0]}'),
    ("GET", "/v1/models/CNN", None),
    ("GET", f"/v1/models/{MODEL}/versions/7", None),
    ("GET", f"/v1/models/{MODEL}:predict", None),
]
PREDICT = (f"/v1/models/{MODEL}:predict", '{"instances": [[1.0], [2.0], [5.0]]}')


def make_base_path(root: pathlib.Path) -> pathlib.Path:
    base = root / MODEL
    shutil.copytree(FIXTURE / "00000123", base / "1")
    return base


def add_version_2(base: pathlib.Path) -> None:
    """Copy the new version in under a temporary name, then rename it: it appears whole."""
    shutil.copytree(FIXTURE / "00000124", base / ".incoming")
    (base / ".incoming").rename(base / "2")


def server_flags(base: pathlib.Path) -> list[str]:
    return [f"--model_name={MODEL}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1"]


def single_server_answers(base: pathlib.Path) -> list[tuple[int, str]]:
    """What `python -m server` answers to PARITY_REQUESTS: (status, body) each."""
    with ServerProcess(server_flags(base)) as server:
        server.wait_available(MODEL)
        return [_send(requests, server.url, m, p, b)[:2] for m, p, b in PARITY_REQUESTS]


def _send(http, url: str, method: str, path: str, body: str | None, timeout: float = 30):
    r = http.request(method, url + path, data=body, timeout=timeout)
    return r.status_code, r.text, r.headers.get(REPLICA, ""), r.headers.get(NODE, "")


class Scenario:
    """One cluster, one Serve application; the steps below run in order on it."""

    def __init__(self, workdir: pathlib.Path, worker_nodes: int = 2):
        self.workdir = workdir
        self.base = make_base_path(workdir)
        self.cluster = LocalRayCluster(worker_nodes=worker_nodes)
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.results: dict = {"nodes": {"head": "0 CPUs (Serve controller and HTTP proxy)",
                                        "workers": worker_nodes, "cpus_per_worker": 1}}

    def __enter__(self) -> Self:
        started = time.monotonic()
        self.cluster.__enter__()
        self.results["cluster_start_s"] = round(time.monotonic() - started, 1)
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.__exit__(*exc)

    # -- deploy --------------------------------------------------------------------------------------

    def deploy(self, *ray_flags: str, key: str = "deploy") -> dict:
        """`python -m server.ray_serve ...`, the one command, run as a reader runs it (its own process,
        a driver that connects to the cluster, deploys and exits)."""
        from server import ray_serve

        argv = [f"--ray_address={self.cluster.address}", f"--app_name={APP}", "--proxy_location=HeadOnly",
                "--upload_code=false", f"--runtime_env={json.dumps(RUNTIME_ENV)}", "--wait_timeout_s=150",
                f"--rest_api_host={LOOPBACK}", f"--rest_api_port={self.port}",
                *server_flags(self.base), *ray_flags]
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "server.ray_serve", *argv], cwd=ROOT, env=dict(os.environ),
                              capture_output=True, text=True, timeout=240, check=False)
        took = round(time.monotonic() - started, 1)
        if done.returncode != 0:
            raise RuntimeError(f"python -m server.ray_serve exited with {done.returncode}:\n{done.stderr[-3000:]}")
        summary = ray_serve.app_summary(APP)
        self.results[key] = {"flags": list(ray_flags), "seconds": took, "replicas": summary["replicas"],
                             "printed": done.stdout.strip().splitlines()[-1]}
        return self.results[key]

    def replicas(self, max_requests: int = 60, want: int | None = None) -> dict[str, str]:
        """replica id -> node id, from the answers' headers (bounded: at most max_requests requests)."""
        seen: dict[str, str] = {}
        with requests.Session() as http:
            for _ in range(max_requests):
                _, _, replica, node = _send(http, self.url, "POST", *PREDICT)
                seen[replica] = node
                if want is not None and len(seen) >= want:
                    break
        return seen

    def listening(self) -> list[str]:
        """Every TCP listener of the cluster's processes that is not on loopback."""
        return sorted(f"{a}:{p} (pid {pid})" for a, p, pid in listening_addresses()
                      if not is_loopback(a))

    # -- parity --------------------------------------------------------------------------------------

    def parity(self, expected: list[tuple[int, str]], replicas: int = 2, max_tries: int = 40) -> dict:
        """Each request of PARITY_REQUESTS sent until `replicas` different replicas have answered it;
        every answer compared with the single server's (status and body, byte for byte)."""
        answers: list[dict[str, tuple[int, str]]] = []
        with requests.Session() as http:
            for method, path, body in PARITY_REQUESTS:
                by_replica: dict[str, tuple[int, str]] = {}
                for _ in range(max_tries):
                    status, text, replica, _ = _send(http, self.url, method, path, body)
                    by_replica.setdefault(replica, (status, text))
                    if len(by_replica) >= replicas:
                        break
                answers.append(by_replica)
        same = sum(1 for want, got in zip(expected, answers) for answer in got.values() if answer == want)
        compared = sum(len(got) for got in answers)
        self.results["parity"] = {"requests": len(PARITY_REQUESTS), "answers_compared": compared,
                                  "identical": same,
                                  "replicas_per_request": sorted({len(got) for got in answers})}
        self._answers = answers
        return self.results["parity"]

    # -- a new version -------------------------------------------------------------------------------

    def new_version(self, replicas: int = 2, timeout: float = 90) -> dict:
        """Copy version 2 in; time until `replicas` different replicas report it AVAILABLE."""
        add_version_2(self.base)
        started = time.monotonic()
        picked: dict[str, float] = {}
        requests_sent = 0
        with requests.Session() as http:
            while len(picked) < replicas and time.monotonic() - started < timeout:
                status, text, replica, _ = _send(http, self.url, "GET", f"/v1/models/{MODEL}", None)
                requests_sent += 1
                state = json.loads(text)["model_version_status"] if status == 200 else []
                if any(v["version"] == "2" and v["state"] == "AVAILABLE" for v in state):
                    picked.setdefault(replica, round(time.monotonic() - started, 1))
                time.sleep(0.05)
        self.results["new_version"] = {"replicas_with_version_2": len(picked),
                                       "seconds_until_each": sorted(picked.values()),
                                       "status_requests": requests_sent}
        return self.results["new_version"]

    # -- a node killed under load --------------------------------------------------------------------

    def kill_node_under_load(self, clients: int = 4, before_s: float = 3.0, after_s: float = 12.0,
                             max_requests: int = 20000) -> dict:
        """`clients` threads send predict requests; after before_s the node of one replica is killed;
        the load goes on for after_s. Every request's outcome is counted."""
        victim_replica, victim_node = min(self.replicas(want=2).items())
        node = next(n for n in self.cluster.workers if n.node_id == victim_node)
        outcomes: list[tuple[float, bool, int, str]] = []   # (time, ok, status, replica)
        lock = threading.Lock()
        stop = threading.Event()
        t0 = time.monotonic()

        def client():
            with requests.Session() as http:
                while not stop.is_set():
                    try:
                        status, text, replica, _ = _send(http, self.url, "POST", *PREDICT, timeout=30)
                        ok = status == 200 and '"predictions"' in text
                    except requests.RequestException:
                        status, ok, replica = 0, False, ""
                    with lock:
                        outcomes.append((time.monotonic() - t0, ok, status, replica))
                        if len(outcomes) >= max_requests:
                            stop.set()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(before_s)
        killed_at = time.monotonic() - t0
        self.cluster.kill_node(node)
        time.sleep(after_s)
        stop.set()
        for t in threads:
            t.join(60)
        failures = [o for o in outcomes if not o[1]]
        after = [o for o in outcomes if o[0] >= killed_at]
        self.results["node_kill"] = {
            "clients": clients, "requests": len(outcomes), "failures": len(failures),
            "failure_statuses": sorted({o[2] for o in failures}),
            "requests_after_kill": len(after),
            "failures_after_kill": sum(1 for o in after if not o[1]),
            "last_failure_s_after_kill": round(max((o[0] for o in failures), default=killed_at) - killed_at, 2),
            "killed_replica_answered_after_s": round(max((o[0] for o in outcomes if o[3] == victim_replica),
                                                         default=killed_at) - killed_at, 2),
            "load_seconds": round(before_s + after_s, 1),
        }
        return self.results["node_kill"]

    def replace_node(self, replicas: int = 2, timeout: float = 180) -> dict:
        """A new node joins; time until Serve runs `replicas` replicas again."""
        started = time.monotonic()
        self.cluster.add_node()
        running = self._wait_replicas(replicas, timeout)
        self.results["node_replaced"] = {"seconds_until_running": round(time.monotonic() - started, 1),
                                         "replicas_running": running}
        return self.results["node_replaced"]

    # -- scaling -------------------------------------------------------------------------------------

    def _running(self) -> int:
        from ray import serve
        app = serve.status().applications.get(APP)
        if app is None:
            return 0
        return app.deployments["TFServing"].replica_states.get("RUNNING", 0)

    def _wait_replicas(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self._running() != count and time.monotonic() < deadline:
            time.sleep(0.5)
        return self._running()

    def _states(self) -> dict:
        from ray import serve
        app = serve.status().applications.get(APP)
        return dict(app.deployments["TFServing"].replica_states) if app is not None else {}

    def autoscale(self, settle_timeout: float = 120, load_timeout: float = 120, idle_timeout: float = 60,
                  clients: int = 6) -> dict:
        """Ray Serve's autoscaler alone, 1 to 2 replicas: after the redeploy has settled on 1 replica,
        up to 2 under load, back to 1 once idle. Running replicas are sampled every 0.25 s from the
        redeploy on (the transitions are kept)."""
        config = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1,
                  "upscale_delay_s": 1, "downscale_delay_s": 3, "metrics_interval_s": 0.5,
                  "look_back_period_s": 2}
        timeline: list[tuple[float, int]] = [(0.0, self._running())]
        watching = threading.Event()
        t0 = time.monotonic()

        def now() -> float:
            return round(time.monotonic() - t0, 1)

        def watch():
            while not watching.is_set():
                running = self._running()
                if running != timeline[-1][1]:
                    timeline.append((now(), running))
                time.sleep(0.25)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.deploy(f"--autoscaling_config={json.dumps(config)}", key="autoscale_deploy")
        deadline = time.monotonic() + settle_timeout
        while self._states() != {"RUNNING": 1} and time.monotonic() < deadline:   # the rollout is over
            time.sleep(0.5)
        settled = self._states()
        stop = threading.Event()
        counts = {"requests": 0, "failures": 0}
        lock = threading.Lock()

        def client():
            with requests.Session() as http:
                sent = 0
                while not stop.is_set() and sent < 5000:
                    try:
                        status, _, _, _ = _send(http, self.url, "POST", *PREDICT)
                        ok = status == 200
                    except requests.RequestException:
                        ok = False
                    sent += 1
                    with lock:
                        counts["requests"] += 1
                        counts["failures"] += not ok

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        load_at = now()
        for t in threads:
            t.start()
        loaded = self._wait_replicas(2, load_timeout)
        up_s = round(now() - load_at, 1)
        stop.set()
        for t in threads:
            t.join(60)
        idle_at = now()
        idle = self._wait_replicas(1, idle_timeout)
        down_s = round(now() - idle_at, 1)
        time.sleep(0.3)   # one more sample for the timeline
        watching.set()
        watcher.join(5)
        self.results["autoscale"] = {
            "config": config, "settled": settled, "load_started_s": load_at, "loaded_replicas": loaded,
            "seconds_to_scale_up": up_s, "load_stopped_s": idle_at, "idle_replicas": idle,
            "seconds_to_scale_down": down_s, "running_replicas_timeline": timeline,
            "clients": clients, **counts}
        return self.results["autoscale"]


def run(workdir: pathlib.Path) -> dict:
    """Every step, in order; the results of each."""
    import ray

    expected = single_server_answers(make_base_path(workdir / "single"))
    started = time.monotonic()
    with Scenario(workdir / "ray") as sc:
        sc.results["ray_version"] = ray.__version__
        sc.deploy("--num_replicas=2")
        sc.results["replica_nodes"] = len(set(sc.replicas(want=2).values()))
        sc.results["non_loopback_listeners"] = sc.listening()
        sc.parity(expected)
        sc.new_version()
        sc.kill_node_under_load()
        sc.replace_node()
        sc.autoscale()
        sc.results["total_s"] = round(time.monotonic() - started, 1)
        return sc.results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=pathlib.Path, help="write results.json there")
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ray-scenario-") as tmp:
        results = run(pathlib.Path(tmp))
    text = json.dumps(results, indent=2, ensure_ascii=False)
    print(text)
    if opts.out:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "results.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
