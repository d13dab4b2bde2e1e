"""`python -m bench` (`make bench`): serve the MNIST model several ways and load them with wrk.

Systems, in one run, on one model:
  naive               bench/naive_server.py: Flask dev server, get_json, np.array, signature, jsonify
  server              python -m server (one worker process)
  server x2           python -m server --workers=2
  server x2+batching  the same with --enable_batching --batching_parameters_file=bench/batching_parameters.txt
  upper bound         bench/upper_bound.py: same bodies parsed, run one request per model call (the
                      calls a server without batching makes) and formatted in one loop, one process,
                      same session settings, no HTTP
  upper bound, batched  the same with the waiting requests merged into one model call, as many as
                      the connections allow up to max_batch_size (the calls a batching server makes)

Load: `wrk` (Debian package; installed with apt-get when missing) with bench/post.lua, over
127.0.0.1 only. Each scenario is measured in a few windows of a fixed number of seconds ("rounds"),
and the upper bound a server is compared with is measured right after each of that server's
windows (its process stays up for the whole run): the tables show the median window of each, so
that a ratio is not two numbers taken minutes apart on a machine whose speed drifts.
Results: a Markdown table and a PNG chart in bench/results/ (or --out DIR), and the same table on
stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from bench.model import MNIST_EXPORT, ROOT, has_versions
from bench.report import BOUND_OF

HERE = pathlib.Path(__file__).resolve().parent
LUA = HERE / "post.lua"
BATCHING_FILE = HERE / "batching_parameters.txt"
MODEL_NAME = "MLP"
SIGNATURE = "call"
MAX_BATCH_SIZE = 128          # keep in step with bench/batching_parameters.txt


@dataclass(frozen=True)
class Scenario:
    name: str
    body: str            # key into the bodies written by write_bodies()
    rows: int            # images per request
    connections: int


SCENARIOS = [
    Scenario("1 image, 1 conn", "single", 1, 1),
    Scenario("1 image, 8 conns", "single", 1, 8),
    Scenario("1 image, 32 conns", "single", 1, 32),
    Scenario("1 image, 128 conns", "single", 1, 128),
    Scenario("100 images, 8 conns", "batch100", 100, 8),
    Scenario("100 images columnar, 8 conns", "columnar100", 100, 8),
]
# Quick (smoke test): small windows, so the 100-image request goes one at a time to finish several.
QUICK_SCENARIOS = [SCENARIOS[1], Scenario("100 images, 1 conn", "batch100", 100, 1)]


@dataclass
class Result:
    system: str
    scenario: Scenario
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_detail: str = ""
    peak_rss_mib: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.scenario.rows


class BenchError(RuntimeError):
    pass


# -- wrk ---------------------------------------------------------------------------------------

def ensure_wrk(install: bool = True) -> str:
    """The wrk binary; installs Debian's package with apt-get when missing (root only)."""
    found = shutil.which("wrk")
    if found:
        return found
    if not install:
        raise BenchError("wrk is not installed (apt-get install -y wrk)")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BenchError("wrk is not installed and cannot be installed here (needs root and apt-get): "
                         "run `sudo apt-get install -y wrk`")
    policy = subprocess.run(["apt-cache", "policy", "wrk"], capture_output=True, text=True).stdout
    if "Candidate: (none)" in policy or "Candidate:" not in policy:
        print("bench: apt-get update (wrk not in the package lists yet)", flush=True)
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=300)
    print("bench: apt-get install -y wrk", flush=True)
    done = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("wrk")
    if done.returncode != 0 or not found:
        raise BenchError("could not install wrk with apt-get: " + (done.stderr or done.stdout).strip()[-500:])
    return found


def run_wrk(wrk: str, url: str, body_file: pathlib.Path, connections: int, seconds: float) -> dict:
    threads = max(1, min(2, connections))
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(LUA), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                          env={**os.environ, "BENCH_BODY": str(body_file)})
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk gave no summary (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


# -- request bodies ------------------------------------------------------------------------------

def mnist_like_image(rng: random.Random) -> list:
    """28x28x1 like a client's `x_test[i] / 255` in float32: mostly 0.0, strokes in (0, 1]."""
    import numpy as np
    img = np.zeros((28, 28, 1), np.float32)
    for _ in range(rng.randint(3, 5)):          # a few strokes of lit pixels
        r, c = rng.randint(4, 23), rng.randint(4, 23)
        for _ in range(rng.randint(25, 45)):
            r = min(27, max(0, r + rng.randint(-1, 1)))
            c = min(27, max(0, c + rng.randint(-1, 1)))
            img[r, c, 0] = np.float32(rng.randint(1, 255) / 255.0)
    return img.tolist()


def write_bodies(directory: pathlib.Path) -> dict[str, pathlib.Path]:
    rng = random.Random(6)
    images = [mnist_like_image(rng) for _ in range(100)]
    docs = {
        "single": {"signature_name": SIGNATURE, "instances": images[:1]},
        "batch100": {"signature_name": SIGNATURE, "instances": images},
        "columnar100": {"signature_name": SIGNATURE, "inputs": images},
    }
    paths = {}
    for key, doc in docs.items():
        paths[key] = directory / f"body_{key}.json"
        paths[key].write_text(json.dumps(doc))
    return paths


# -- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class ServerProcess:
    def __init__(self, system: str, cmd: list[str], port: int, log_path: pathlib.Path):
        self.system, self.cmd, self.port, self.log_path = system, cmd, port, log_path
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def start(self, timeout: float = 180.0) -> None:
        t0 = time.monotonic()
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        url = f"http://127.0.0.1:{self.port}/v1/models/{MODEL_NAME}"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.system} exited with {self.proc.returncode} while starting:\n"
                                 + self.log_tail())
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200 and b"AVAILABLE" in r.read():
                        self.startup_s = time.monotonic() - t0
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.system} not AVAILABLE after {timeout:.0f} s:\n" + self.log_tail())

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
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
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
        with urllib.request.urlopen(req, timeout=30) as r:
            doc = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise BenchError(f"predict answered {e.code}: {e.read()[:500]!r}") from None
    values = doc.get("predictions", doc.get("outputs"))
    if not isinstance(values, list) or len(values) != rows or len(values[0]) != 10:
        raise BenchError(f"unexpected predict answer: {json.dumps(doc)[:300]}")


# -- the run -------------------------------------------------------------------------------------

SYSTEMS = ("naive", "server", "server x2", "server x2+batching", "upper")
# A small MLP runs fastest with each op in the request's own thread (no hand-off to TensorFlow's
# pools, measured ~100 us -> ~25 us per call): the parallelism comes from concurrent requests and
# from worker processes. The upper bound loads the model with the same settings.
INTRA_OP, INTER_OP = 1, -1
# Seconds per measurement of the upper bound: a tight loop in one process varies little within a run.
UPPER_SECONDS = 2.0


def server_commands(model_path: pathlib.Path, port: int, threads: int) -> dict[str, list[str]]:
    py = sys.executable
    base = [py, "-m", "server", f"--rest_api_port={port}", "--rest_api_host=127.0.0.1",
            f"--model_name={MODEL_NAME}", f"--model_base_path={model_path}",
            f"--tensorflow_intra_op_parallelism={INTRA_OP}", f"--tensorflow_inter_op_parallelism={INTER_OP}"]
    if threads:
        base.append(f"--rest_api_num_threads={threads}")
    return {
        "naive": [py, "-m", "bench.naive_server", "--port", str(port), "--model_name", MODEL_NAME,
                  "--model_base_path", str(model_path)],
        "server": base + ["--workers=1"],
        "server x2": base + ["--workers=2"],
        "server x2+batching": base + ["--workers=2", "--enable_batching",
                                      f"--batching_parameters_file={BATCHING_FILE}"],
    }


# wrk counts only the requests that finish inside a window: with slow answers, those still in flight
# when it closes would make a short window read low. Windows last at least 20 mean latencies (as seen
# in the warm-up), at most MAX_WINDOW_S; a window lengthened that way is measured once.
MAX_WINDOW_S = 30.0


def window_seconds(warm: dict, seconds: float, connections: int) -> float:
    if warm["requests"] < 2 * connections:  # the warm-up saw almost nothing finish: very slow answers
        return max(seconds, MAX_WINDOW_S)
    return min(max(seconds, MAX_WINDOW_S), max(seconds, 20 * warm["mean_us"] / 1e6))


def window_rate(w: dict) -> float:
    """Requests per second of one wrk window."""
    return w["requests"] / (max(w["duration_us"], 1) / 1e6)


def median_window(windows: list[dict], rate) -> dict:
    """The window with the median rate (the lower middle one for an even count)."""
    ranked = sorted(windows, key=rate)
    return ranked[(len(ranked) - 1) // 2]


def bench_system(system: str, cmd: list[str], port: int, scenarios, bodies, seconds, rounds, wrk, out_dir,
                 upper: "UpperBound | None" = None) -> list[Result]:
    results = []
    with ServerProcess(system, cmd, port, out_dir / f"{system.replace('+', '_')}.log") as server:
        server.start()
        print(f"bench: {system} AVAILABLE after {server.startup_s:.1f} s "
              f"(RSS {peak_rss_mib(server.proc.pid) or 0:.0f} MiB)", flush=True)
        url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}:predict"
        for sc in scenarios:
            check_answer(port, bodies[sc.body], sc.rows)
            warm = run_wrk(wrk, url, bodies[sc.body], sc.connections, 1)  # warm-up, not counted
            reset_peak_rss(server.proc.pid)
            window = window_seconds(warm, seconds, sc.connections)
            windows = []
            for _ in range(rounds if window <= seconds else 1):
                windows.append(run_wrk(wrk, url, bodies[sc.body], sc.connections, window))
                if upper is not None and upper.error is None and system in BOUND_OF:
                    try:  # its bound, now, while the server idles
                        upper.measure(sc, upper_groups(sc)[BOUND_OF[system]])
                    except BenchError:
                        pass  # reported once, by upper.results()
            w = median_window(windows, window_rate)
            errs = sum(x[k] for x in windows for k in ("connect", "read", "write", "status", "timeout"))
            detail = ", ".join(f"{k} {n}" for k in ("status", "connect", "read", "write", "timeout")
                               if (n := sum(x[k] for x in windows)))
            ok = max(0, w["requests"] - w["status"])
            r = Result(system, sc, requests=ok, seconds=w["duration_us"] / 1e6,
                       p50_ms=w["p50_us"] / 1e3, p99_ms=w["p99_us"] / 1e3, errors=errs, error_detail=detail,
                       peak_rss_mib=peak_rss_mib(server.proc.pid),
                       extra={"startup_s": server.startup_s,
                              "rounds_rps": [round(window_rate(x), 1) for x in windows]})
            results.append(r)
            print(f"bench: {system:16s} {sc.name:30s} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.1f} ms  "
                  f"p99 {r.p99_ms:7.1f} ms  errors {errs}", flush=True)
            if server.proc.poll() is not None:
                raise BenchError(f"{system} died during '{sc.name}':\n" + server.log_tail())
    return results


def upper_groups(sc: Scenario) -> dict[str, int]:
    """Requests per model call for each upper bound: one (no batching), or the batches a batching
    server forms at best: every waiting request (one per connection), at most MAX_BATCH_SIZE rows."""
    return {"upper bound": 1, "upper bound, batched": max(1, min(sc.connections, MAX_BATCH_SIZE // sc.rows))}


class UpperBound:
    """bench/upper_bound.py in its own process for the whole run, measuring when asked.

    Every measurement of one (body, requests per call) is kept; the tables show the median one.
    """

    def __init__(self, model_path: pathlib.Path, bodies: dict, seconds: float, out_dir: pathlib.Path):
        self.bodies, self.seconds = bodies, seconds
        self.samples: dict[tuple[str, int], list[dict]] = {}
        self.error: str | None = None
        self._pending = b""  # read from its stdout, not yet a whole line
        self._log = open(out_dir / "upper_bound.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upper_bound", "--model_base_path", str(model_path),
             f"--intra_op={INTRA_OP}", f"--inter_op={INTER_OP}"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self._expect("UPPER_READY", timeout=180)

    def _expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line that starts with `prefix`, waiting at most `timeout` s.

        Reads the pipe's bytes itself: a buffered reader could hold a whole line that select()
        would then never report."""
        import select
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix):
                    return text[len(prefix):].strip()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._pending += chunk
        self.close()
        tail = (pathlib.Path(self._log.name).read_text(errors="replace"))[-2000:]
        self.error = f"upper bound gave no {prefix.strip()} line:\n{tail}"
        raise BenchError(self.error)

    def measure(self, sc: Scenario, group: int) -> dict:
        if self.error is not None:
            raise BenchError(self.error)
        item = {"body": str(self.bodies[sc.body]), "group": group, "seconds": self.seconds}
        try:
            self.proc.stdin.write((json.dumps(item) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:  # the process is gone; _expect below says what it logged
            print(f"bench: upper bound: {e}", file=sys.stderr, flush=True)
        m = json.loads(self._expect("UPPER_JSON ", timeout=self.seconds + 120))
        self.samples.setdefault((sc.body, group), []).append(m)
        return m

    def results(self, scenarios, rounds: int) -> list[Result]:
        """One row per scenario and bound: the median of its measurements (taken now if none was)."""
        out = []
        for sc in scenarios:
            for system, group in upper_groups(sc).items():
                while len(self.samples.get((sc.body, group), [])) < rounds:
                    self.measure(sc, group)
                samples = self.samples[(sc.body, group)]
                m = median_window(samples, lambda m: m["requests_per_s"])
                out.append(Result(system, sc, requests=m["requests"], seconds=m["seconds"],
                                  extra={"path": m["path"], "group": group,
                                         "rounds_rps": [round(x["requests_per_s"], 1) for x in samples]}))
        return out

    def close(self) -> None:
        if self._log.closed:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def resolve_model(arg: str | None, out_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    if arg:
        path = pathlib.Path(arg).resolve()
        if not has_versions(path):
            raise BenchError(f"no version directories under {path}")
        return path, f"given model {path}"
    if has_versions(MNIST_EXPORT):
        return MNIST_EXPORT, "the chapter's exported MNIST MLP"
    standin = out_dir / "standin_model"
    if not has_versions(standin):
        print("bench: no exported MNIST model yet; exporting a stand-in MLP of the same shape", flush=True)
        done = subprocess.run([sys.executable, "-m", "bench.model", str(standin)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if done.returncode != 0 or not has_versions(standin):
            raise BenchError("could not export the stand-in model:\n" + done.stderr[-2000:])
    return standin.resolve(), "a stand-in MLP of the MNIST model's shape (random weights)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: two scenarios, 2 s each")
    p.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per measurement window (default 3, quick 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="windows per scenario, the median shown (default 3, quick 1)")
    p.add_argument("--model_base_path", default=None, help="model to serve (default: the MNIST export)")
    p.add_argument("--systems", default=None,
                   help="comma-separated subset of " + ",".join(SYSTEMS) +
                        " (default all; --quick: server,upper)")
    p.add_argument("--rest_api_num_threads", type=int, default=None,
                   help="threads per server worker (default: the server's, 4 x cores)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)

    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = args.seconds or (2.0 if args.quick else 3.0)
    rounds = max(1, args.rounds or (1 if args.quick else 3))
    scenarios = QUICK_SCENARIOS if args.quick else SCENARIOS
    systems = (args.systems or ("server,upper" if args.quick else ",".join(SYSTEMS)))
    systems = [s.strip() for s in systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")

    try:
        wrk = ensure_wrk(install=not args.no_install)
        model_path, model_desc = resolve_model(args.model_base_path, out_dir)
        bodies = write_bodies(out_dir)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    results: list[Result] = []
    failures: dict[str, str] = {}
    t0 = time.monotonic()
    upper = None
    if "upper" in systems:
        try:
            upper = UpperBound(model_path, bodies, UPPER_SECONDS if not args.quick else seconds, out_dir)
        except BenchError as e:
            failures["upper"] = str(e)
            print(f"bench: upper failed: {e}", file=sys.stderr, flush=True)
    try:
        for system in SYSTEMS:
            if system not in systems or system == "upper":
                continue
            try:
                port = free_port()
                cmd = server_commands(model_path, port, args.rest_api_num_threads)[system]
                results += bench_system(system, cmd, port, scenarios, bodies, seconds, rounds, wrk, out_dir, upper)
            except BenchError as e:
                # One system failing (say, a server that does not start) still leaves the others measured.
                failures[system] = str(e)
                print(f"bench: {system} failed: {e}", file=sys.stderr, flush=True)
        if upper is not None:
            try:
                results += upper.results(scenarios, rounds)
            except BenchError as e:
                failures["upper"] = str(e)
                print(f"bench: upper failed: {e}", file=sys.stderr, flush=True)
    finally:
        if upper is not None:
            upper.close()
    elapsed = time.monotonic() - t0

    from bench.report import write_report
    md = write_report(results, scenarios, out_dir, model_desc=model_desc, seconds=seconds, rounds=rounds,
                      elapsed=elapsed, wrk=wrk, quick=args.quick, failures=failures)
    print(md)
    print(f"bench: results in {out_dir / 'results.md'} and {out_dir / 'bench.png'}")
    return 1 if failures else 0
