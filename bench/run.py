"""`python -m bench` (`make bench`): serve two models several ways and load them with wrk.

Systems, on the chapter's MNIST MLP (its export, or a stand-in of its shape):
  naive               bench/naive_server.py: Flask dev server, get_json, np.array, signature, jsonify
  kserve              KServe's Python ModelServer (bench/kserve_server.py), in .venv-peers/kserve
  bentoml             BentoML (bench/bentoml_service.py), in .venv-peers/bentoml
  server              python -m server (one worker process)
  server x2           python -m server --workers=2
  server x2+batching  the same with --enable_batching --batching_parameters_file=bench/batching_parameters.txt
  upper bound         bench/upper_bound.py: same bodies parsed, run one request per model call (the
                      calls a server without batching makes) and formatted in one loop, one process,
                      same session settings, no HTTP
  upper bound, batched  the same with the waiting requests merged into one model call, as many as
                      the connections allow up to max_batch_size (the calls a batching server makes)
and on a small convolutional network (bench/model.py, "CNN: ..." scenarios), where batching pays:
  server, server+batching (one worker, bench/batching_parameters_cnn.txt and 32 request threads),
  server x2, and the two upper bounds.
The peers (kserve, bentoml) run TensorFlow with the servers' thread settings (INTRA_OP, INTER_OP).

Load: `wrk` (Debian package; installed with apt-get when missing) with bench/post.lua, over
127.0.0.1 only. Each scenario is measured in a few windows of a fixed number of seconds ("rounds"),
and the upper bound a server is compared with is measured right after each of that server's
windows (its process stays up for the whole run): the tables show the median window of each, so
that a ratio is not two numbers taken minutes apart on a machine whose speed drifts. For every
window the CPU seconds of the system's process tree are read, and its peak RSS per scenario.
Results: a Markdown table, a CSV, a PNG chart and results.json in bench/results/ (or --out DIR),
and the same table on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import time

from bench.common import MODEL_NAME, SIGNATURE, BenchError, Result, Scenario
from bench.model import MNIST_EXPORT, ROOT, has_versions
from bench.peers import PEERS
from bench.procs import ServerProcess, check_answer, cpu_seconds, free_port, peak_rss_mib, reset_peak_rss
from bench.report import BOUND_OF, write_report
from bench.upper import INTER_OP, INTRA_OP, UpperBound, median_window
from bench.wrk import ensure_wrk, run_wrk, window_rate

HERE = pathlib.Path(__file__).resolve().parent
BATCHING_FILE = HERE / "batching_parameters.txt"
CNN_BATCHING_FILE = HERE / "batching_parameters_cnn.txt"
MAX_BATCH_SIZE = {"mlp": 128, "cnn": 32}   # keep in step with the two batching parameters files
CNN_BATCHING_THREADS = 32                  # request threads of the batching CNN server

SCENARIOS = [
    Scenario("1 image, 1 conn", "single", 1, 1),
    Scenario("1 image, 8 conns", "single", 1, 8),
    Scenario("1 image, 32 conns", "single", 1, 32),
    Scenario("1 image, 128 conns", "single", 1, 128),
    Scenario("100 images, 8 conns", "batch100", 100, 8),
    Scenario("100 images columnar, 8 conns", "columnar100", 100, 8),
] + [Scenario(f"CNN: 1 image, {n} conn{'s' if n > 1 else ''}", "single", 1, n, model="cnn") for n in (1, 8, 32, 128)]
# Quick (smoke test): small windows, so the 100-image request goes one at a time to finish several.
QUICK_SCENARIOS = [SCENARIOS[1], Scenario("100 images, 1 conn", "batch100", 100, 1), SCENARIOS[-3]]

SYSTEMS = ("naive", "kserve", "bentoml", "server", "server x2", "server+batching", "server x2+batching", "upper")
# Which model each system serves (the peers and the naive demo: the MLP only, to keep `make bench` near
# a quarter of an hour; `--models cnn --systems kserve,...` is not refused, it just measures nothing).
MODELS_OF = {"naive": ("mlp",), "kserve": ("mlp",), "bentoml": ("mlp",), "server x2+batching": ("mlp",),
             "server+batching": ("cnn",), "server": ("mlp", "cnn"), "server x2": ("mlp", "cnn"),
             "upper": ("mlp", "cnn")}


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


# -- the systems ---------------------------------------------------------------------------------

def server_command(system: str, model_path: pathlib.Path, model: str, port: int, threads: int | None) -> list[str]:
    py = sys.executable
    if system == "naive":
        return [py, "-m", "bench.naive_server", "--port", str(port), "--model_name", MODEL_NAME,
                "--model_base_path", str(model_path)]
    cmd = [py, "-m", "server", f"--rest_api_port={port}", "--rest_api_host=127.0.0.1",
           f"--model_name={MODEL_NAME}", f"--model_base_path={model_path}",
           f"--tensorflow_intra_op_parallelism={INTRA_OP}", f"--tensorflow_inter_op_parallelism={INTER_OP}",
           "--workers=2" if "x2" in system else "--workers=1"]
    if system.endswith("batching"):
        cmd += ["--enable_batching",
                f"--batching_parameters_file={CNN_BATCHING_FILE if model == 'cnn' else BATCHING_FILE}"]
        if model == "cnn" and not threads:
            threads = CNN_BATCHING_THREADS
    if threads:
        cmd.append(f"--rest_api_num_threads={threads}")
    return cmd


def start_system(system: str, model_path: pathlib.Path, model: str, port: int, threads: int | None,
                 out_dir: pathlib.Path) -> ServerProcess:
    log = out_dir / f"{model}_{system.replace('+', '_').replace(' ', '_')}.log"
    if system in PEERS:
        peer = PEERS[system]
        if (why := peer.missing()) is not None:
            raise BenchError(why)
        cmd, env = peer.command(model_path, port, INTRA_OP, INTER_OP)
        return ServerProcess(system, cmd, port, log, ready=peer.ready, env=env)
    return ServerProcess(system, server_command(system, model_path, model, port, threads), port, log)


# wrk counts only the requests that finish inside a window: with slow answers, those still in flight
# when it closes would make a short window read low. Windows last at least 20 mean latencies (as seen
# in the warm-up), at most MAX_WINDOW_S; a window lengthened that way is measured once.
MAX_WINDOW_S = 30.0


def window_seconds(warm: dict, seconds: float, connections: int) -> float:
    if warm["requests"] < 2 * connections:  # the warm-up saw almost nothing finish: very slow answers
        return max(seconds, MAX_WINDOW_S)
    return min(max(seconds, MAX_WINDOW_S), max(seconds, 20 * warm["mean_us"] / 1e6))


def bench_system(server: ServerProcess, scenarios, bodies, seconds, rounds, wrk,
                 upper: UpperBound | None = None) -> list[Result]:
    system, port, results = server.system, server.port, []
    server.start()
    print(f"bench: {system} ready after {server.startup_s:.1f} s "
          f"(RSS {peak_rss_mib(server.proc.pid) or 0:.0f} MiB)", flush=True)
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL_NAME}:predict"
    for sc in scenarios:
        check_answer(port, bodies[sc.body], sc.rows)
        warm = run_wrk(wrk, url, bodies[sc.body], sc.connections, 1)  # warm-up, not counted
        reset_peak_rss(server.proc.pid)
        window = window_seconds(warm, seconds, sc.connections)
        windows = []
        for _ in range(rounds if window <= seconds else 1):
            cpu0 = cpu_seconds(server.proc.pid)
            w = run_wrk(wrk, url, bodies[sc.body], sc.connections, window)
            w["cpu_s"] = cpu_seconds(server.proc.pid) - cpu0
            windows.append(w)
            if upper is not None and system in BOUND_OF:
                upper.measure_after(sc, BOUND_OF[system])  # its bound, now, while the server idles
        w = median_window(windows, window_rate)
        errs = sum(x[k] for x in windows for k in ("connect", "read", "write", "status", "timeout"))
        detail = ", ".join(f"{k} {n}" for k in ("status", "connect", "read", "write", "timeout")
                           if (n := sum(x[k] for x in windows)))
        ok = max(0, w["requests"] - w["status"])
        r = Result(system, sc, requests=ok, seconds=w["duration_us"] / 1e6,
                   p50_ms=w["p50_us"] / 1e3, p99_ms=w["p99_us"] / 1e3, errors=errs, error_detail=detail,
                   peak_rss_mib=peak_rss_mib(server.proc.pid), cpu_s=w["cpu_s"],
                   extra={"startup_s": server.startup_s,
                          "rounds_rps": [round(window_rate(x), 1) for x in windows]})
        results.append(r)
        print(f"bench: {system:18s} {sc.name:30s} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.1f} ms  "
              f"p99 {r.p99_ms:7.1f} ms  CPU {r.cpu_s_per_1000 or 0:6.2f} s/1000  errors {errs}", flush=True)
        if server.proc.poll() is not None:
            raise BenchError(f"{system} died during '{sc.name}':\n" + server.log_tail())
    return results


# -- the models ----------------------------------------------------------------------------------

def export(kind: str, directory: pathlib.Path) -> pathlib.Path:
    """bench/model.py's `kind` model ("mlp" stand-in or "cnn"), exported once into `directory`."""
    if not has_versions(directory):
        print(f"bench: exporting the {kind.upper()} (random weights) into {directory}", flush=True)
        done = subprocess.run([sys.executable, "-m", "bench.model", str(directory), kind], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if done.returncode != 0 or not has_versions(directory):
            raise BenchError(f"could not export the {kind} model:\n" + done.stderr[-2000:])
    return directory.resolve()


def resolve_mlp(arg: str | None, out_dir: pathlib.Path) -> tuple[pathlib.Path, str]:
    if arg:
        path = pathlib.Path(arg).resolve()
        if not has_versions(path):
            raise BenchError(f"no version directories under {path}")
        return path, f"given model {path}"
    if has_versions(MNIST_EXPORT):
        return MNIST_EXPORT, "the chapter's exported MNIST MLP"
    return export("mlp", out_dir / "standin_model"), "a stand-in MLP of the MNIST model's shape (random weights)"


CNN_DESC = ("a ResNet-style CNN, bench/model.py (3x3 stem, 3 residual stages of 16/32/64 channels, "
            "a dense head of 2,048 units on the flattened 7x7x64 features; about 15.7 million "
            "multiply-adds and 6.5 million parameters per image, random weights)")


def run_model(model: str, model_path: pathlib.Path, systems, scenarios, bodies, seconds, rounds, wrk, out_dir,
              threads, use_upper: bool, failures: dict) -> list[Result]:
    """Every chosen system on one model's scenarios, then that model's upper bounds."""
    results: list[Result] = []
    upper = None
    if use_upper:
        try:
            upper = UpperBound(model_path, bodies, min(seconds, 2.0), out_dir, MAX_BATCH_SIZE[model], label=model)
        except BenchError as e:
            failures[f"upper ({model})"] = str(e)
            print(f"bench: upper ({model}) failed: {e}", file=sys.stderr, flush=True)
    try:
        for system in systems:
            if system == "upper" or model not in MODELS_OF[system]:
                continue
            try:
                with start_system(system, model_path, model, free_port(), threads, out_dir) as server:
                    results += bench_system(server, scenarios, bodies, seconds, rounds, wrk, upper)
            except BenchError as e:
                # One system failing (say, a server that does not start) still leaves the others measured.
                failures[system if model == "mlp" else f"{system} (CNN)"] = str(e)
                print(f"bench: {system} ({model}) failed: {e}", file=sys.stderr, flush=True)
        if upper is not None:
            try:
                results += upper.results(scenarios, rounds)
            except BenchError as e:
                failures[f"upper ({model})"] = str(e)
                print(f"bench: upper ({model}) failed: {e}", file=sys.stderr, flush=True)
    finally:
        if upper is not None:
            upper.close()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke test: two MLP scenarios, 2 s each")
    p.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per measurement window (default 3, quick 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="windows per scenario, the median shown (default 3, quick 1)")
    p.add_argument("--model_base_path", default=None, help="MLP to serve (default: the MNIST export)")
    p.add_argument("--models", default=None, help="mlp, cnn or mlp,cnn (default both; --quick: mlp)")
    p.add_argument("--systems", default=None,
                   help="comma-separated subset of " + ",".join(SYSTEMS) +
                        " (default all; --quick: server,upper)")
    p.add_argument("--rest_api_num_threads", type=int, default=None,
                   help="threads per server worker (default: the server's; 32 for the batching CNN server)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)

    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = args.seconds or (2.0 if args.quick else 3.0)
    rounds = max(1, args.rounds or (1 if args.quick else 3))
    systems = (args.systems or ("server,upper" if args.quick else ",".join(SYSTEMS)))
    systems = [s.strip() for s in systems.split(",") if s.strip()]
    models = [m.strip() for m in (args.models or ("mlp" if args.quick else "mlp,cnn")).split(",") if m.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if unknown := set(models) - {"mlp", "cnn"}:
        p.error(f"unknown models: {', '.join(sorted(unknown))}")
    systems = [s for s in SYSTEMS if s in systems]
    scenarios = [sc for sc in (QUICK_SCENARIOS if args.quick else SCENARIOS) if sc.model in models]

    try:
        wrk = ensure_wrk(install=not args.no_install)
        paths, descs = {}, {}
        if "mlp" in models:
            paths["mlp"], descs["mlp"] = resolve_mlp(args.model_base_path, out_dir)
        if "cnn" in models:
            paths["cnn"], descs["cnn"] = export("cnn", out_dir / "cnn_model"), CNN_DESC
        bodies = write_bodies(out_dir)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    results: list[Result] = []
    failures: dict[str, str] = {}
    t0 = time.monotonic()
    for model in models:
        results += run_model(model, paths[model], systems, [sc for sc in scenarios if sc.model == model], bodies,
                             seconds, rounds, wrk, out_dir, args.rest_api_num_threads, "upper" in systems, failures)
    elapsed = time.monotonic() - t0

    md = write_report(results, scenarios, out_dir, model_desc=descs, seconds=seconds, rounds=rounds,
                      elapsed=elapsed, wrk=wrk, quick=args.quick, failures=failures)
    print(md)
    print(f"bench: results in {out_dir / 'results.md'} and {out_dir / 'bench.png'}")
    return 1 if failures else 0
