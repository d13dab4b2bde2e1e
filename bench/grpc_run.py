"""`python -m bench.grpc_run` (part of `make bench`): this server's gRPC API beside its REST API.

One server process (one worker, the same TensorFlow settings as bench/run.py) serves the chapter's MNIST
model on both ports; the scenarios of issue 11 are loaded in turn over REST (wrk, bench/post.lua) and
over gRPC (h2load, bench/grpc_load.py), with the same images: one image at 32 concurrent calls and 100
images at 8. The in-process upper bound (bench/upper_bound.py) measures each transport's unavoidable work
(decode, check, run, encode; no network) right after each window, in its own process, as bench/run.py
does for REST. Each scenario is measured in a few windows and the median window is shown.

A third reference, for gRPC: bench/grpc_noop_server.py, a grpcio server with the same stubs and threads
that answers every Predict at once with this server's own response to the same request (nothing decoded
or run), loaded by h2load in the same way right after each gRPC window. It is what grpcio itself can
serve on this machine, whatever the server does.

gRPC failures: h2load sees HTTP statuses only; the server's own Prometheus count of requests whose
status is not OK (read before and after each gRPC window) adds the calls that failed inside gRPC.
Before any load, one call of each kind is made and the REST and gRPC answers are compared.

Results: grpc.md and grpc.json in bench/results/ (or --out DIR), and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time
import urllib.request

import numpy as np

from bench import grpc_load
from bench.common import MODEL_NAME, SIGNATURE, BenchError
from bench.model import ROOT
from bench.procs import ServerProcess, end_child, free_port
from bench.run import resolve_mlp, write_bodies
from bench.upper import INTER_OP, INTRA_OP, median_window
from bench.wrk import ensure_wrk, run_wrk, window_rate

SCENARIOS = [("1 image, 32 conns", "single", 32), ("100 images, 8 conns", "batch100", 8)]
METRICS_PATH = "/monitoring/prometheus/metrics"


def grpc_bodies(json_bodies: dict[str, pathlib.Path], out_dir: pathlib.Path) -> dict[str, dict[str, pathlib.Path]]:
    """For each JSON body, the same images as a PredictRequest: framed for h2load, raw for the bound."""
    out = {}
    for key, path in json_bodies.items():
        doc = json.loads(path.read_text())
        images = np.asarray(doc.get("instances", doc.get("inputs")), np.float32)
        request = grpc_load.predict_request(MODEL_NAME, SIGNATURE, "inputs", images)
        frame, raw = out_dir / f"grpc_{key}.frame", out_dir / f"grpc_{key}.pb"
        frame.write_bytes(grpc_load.grpc_frame(request))
        raw.write_bytes(request.SerializeToString())
        out[key] = {"frame": frame, "raw": raw, "request": request}
    return out


def failed_calls(rest_port: int) -> float:
    """The server's count of requests that did not end OK (its Prometheus page, all transports)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}{METRICS_PATH}", timeout=10) as r:
        return count_not_ok(r.read().decode())


def count_not_ok(page: str) -> float:
    """The sum of :tensorflow:serving:request_count over every status but OK, from a Prometheus page."""
    total = 0.0
    for line in page.splitlines():
        if line.startswith(":tensorflow:serving:request_count{") and 'status="OK"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def same_answers(rest_port: int, grpc_port: int, json_body: pathlib.Path, request) -> None:
    """One predict each way before the load: the two transports must answer the same numbers."""
    req = urllib.request.Request(f"http://127.0.0.1:{rest_port}/v1/models/{MODEL_NAME}:predict",
                                 data=json_body.read_bytes(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        rest = np.asarray(json.loads(r.read())["predictions"], np.float32)
    (grpc_out,) = grpc_load.check_answer(grpc_port, request).values()
    if grpc_out.shape != rest.shape or not np.allclose(grpc_out, rest, rtol=1e-6, atol=1e-7):
        raise BenchError(f"REST and gRPC answers differ: {rest.ravel()[:5]} vs {grpc_out.ravel()[:5]}")


def predict_response(port: int, request) -> bytes:
    """The server's serialized PredictResponse to `request` (one call through the official stub)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return response.SerializeToString()


class NoopServer:
    """bench/grpc_noop_server.py in its own process, answering with a fixed response."""

    def __init__(self, response_file: pathlib.Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.grpc_noop_server", str(self.port), str(response_file)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        expect_line(self.proc, "GRPC_NOOP_READY", "the do-nothing gRPC server")

    def close(self) -> None:
        end_child(self.proc)


class Bound:
    """bench/upper_bound.py in its own process, asked for one measurement at a time."""

    def __init__(self, model_path: pathlib.Path, seconds: float):
        self.seconds = seconds
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upper_bound", "--model_base_path", str(model_path),
             f"--intra_op={INTRA_OP}", f"--inter_op={INTER_OP}"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        expect_line(self.proc, "UPPER_READY", "upper bound")

    def measure(self, body: pathlib.Path, transport: str) -> float:
        item = {"body": str(body), "group": 1, "seconds": self.seconds, "transport": transport}
        self.proc.stdin.write(json.dumps(item) + "\n")
        self.proc.stdin.flush()
        return json.loads(expect_line(self.proc, "UPPER_JSON", "upper bound"))["requests_per_s"]

    def close(self) -> None:
        end_child(self.proc)


def median_of(windows: list[dict], key: str) -> dict:
    """The window with the median `key` (the lower middle one for an even count)."""
    return median_window(windows, lambda w: w[key])


def expect_line(proc: subprocess.Popen, prefix: str, what: str) -> str:
    """The rest of the helper process's next stdout line that starts with `prefix`."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise BenchError(f"{what} exited ({proc.wait()}) before {prefix}")


def run(args) -> dict:
    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path, model_desc = resolve_mlp(args.model_base_path, out_dir)
    bodies = write_bodies(out_dir)
    grpc = grpc_bodies({key: bodies[key] for _, key, _ in SCENARIOS}, out_dir)
    wrk = ensure_wrk(install=not args.no_install)
    if (why := grpc_load.h2load_available()) is not None:
        raise BenchError(why)
    rest_port, grpc_port = free_port(), free_port()
    monitoring = out_dir / "grpc_monitoring.txt"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    cmd = [sys.executable, "-m", "server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
           "--rest_api_host=127.0.0.1", f"--model_name={MODEL_NAME}", f"--model_base_path={model_path}",
           f"--tensorflow_intra_op_parallelism={INTRA_OP}", f"--tensorflow_inter_op_parallelism={INTER_OP}",
           "--workers=1", f"--monitoring_config_file={monitoring}"]
    rows = []
    t0 = time.monotonic()
    with ServerProcess("server", cmd, rest_port, out_dir / "grpc_server.log") as server:
        server.start()
        for _, key, _ in SCENARIOS:
            same_answers(rest_port, grpc_port, bodies[key], grpc[key]["request"])
        bound = Bound(model_path, args.seconds)
        try:
            for name, key, conns in SCENARIOS:
                rest_windows, grpc_windows, noop_windows = [], [], []
                url = f"http://127.0.0.1:{rest_port}/v1/models/{MODEL_NAME}:predict"
                response_file = out_dir / f"grpc_{key}_response.pb"
                response_file.write_bytes(predict_response(grpc_port, grpc[key]["request"]))
                noop = NoopServer(response_file)
                run_wrk(wrk, url, bodies[key], conns, 1)                       # warm-up, not counted
                grpc_load.run(grpc_port, grpc[key]["frame"], conns, 1, out_dir / "h2load_warmup.log")
                grpc_load.run(noop.port, grpc[key]["frame"], conns, 1, out_dir / "h2load_warmup.log")
                for _ in range(args.rounds):
                    w = run_wrk(wrk, url, bodies[key], conns, args.seconds)
                    errors = sum(w[k] for k in ("connect", "read", "write", "status", "timeout"))
                    rest_windows.append({"rps": window_rate(w), "p50_ms": w["p50_us"] / 1000,
                                         "p99_ms": w["p99_us"] / 1000, "errors": errors,
                                         "bound_rps": bound.measure(bodies[key], "rest")})
                    before = failed_calls(rest_port)
                    g = grpc_load.run(grpc_port, grpc[key]["frame"], conns, args.seconds, out_dir / "h2load.log")
                    failed_inside = failed_calls(rest_port) - before
                    grpc_windows.append({"rps": g["requests"] / g["seconds"], "p50_ms": g["p50_ms"],
                                         "p99_ms": g["p99_ms"], "errors": g["failed"] + int(failed_inside),
                                         "bound_rps": bound.measure(grpc[key]["raw"], "grpc"),
                                         "h2load": g["summary"]})
                    n = grpc_load.run(noop.port, grpc[key]["frame"], conns, args.seconds, out_dir / "h2load.log")
                    noop_windows.append({"rps": n["requests"] / n["seconds"], "p50_ms": n["p50_ms"],
                                         "p99_ms": n["p99_ms"], "errors": n["failed"]})
                noop.close()
                rest, grpc_w = median_of(rest_windows, "rps"), median_of(grpc_windows, "rps")
                rows.append({"scenario": name, "connections": conns, "rest": rest, "grpc": grpc_w,
                             "grpc_noop": median_of(noop_windows, "rps"),
                             "rest_windows": rest_windows, "grpc_windows": grpc_windows, "noop_windows": noop_windows,
                             "errors": sum(w["errors"] for w in rest_windows + grpc_windows)})
        finally:
            bound.close()
    return {"model": model_desc, "seconds": args.seconds, "rounds": args.rounds, "rows": rows,
            "elapsed_s": round(time.monotonic() - t0, 1)}


def markdown(results: dict) -> str:
    lines = [f"# gRPC and REST, one worker ({results['model']})", "",
             f"{results['rounds']} windows of {results['seconds']:g} s per scenario and transport, the median "
             "window shown; bounds measured right after each window. do-nothing gRPC: a grpcio server with the "
             "same stubs and threads that answers at once with the same response (bench/grpc_noop_server.py), "
             "loaded the same way: what grpcio itself serves here.", "",
             "| scenario | REST req/s (p99) | gRPC req/s (p99) | gRPC / REST | gRPC bound req/s | gRPC / its bound "
             "| REST / its bound | do-nothing gRPC req/s | gRPC / do-nothing | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["rows"]:
        r, g, n = row["rest"], row["grpc"], row["grpc_noop"]
        lines.append(
            f"| {row['scenario']} | {r['rps']:,.0f} ({r['p99_ms']:.1f} ms) | {g['rps']:,.0f} ({g['p99_ms']:.1f} ms) "
            f"| {g['rps'] / r['rps']:.2f}x | {g['bound_rps']:,.0f} | {100 * g['rps'] / g['bound_rps']:.1f}% "
            f"| {100 * r['rps'] / r['bound_rps']:.1f}% | {n['rps']:,.0f} | {100 * g['rps'] / n['rps']:.1f}% "
            f"| {row['errors']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--model_base_path", default=None)
    p.add_argument("--seconds", type=float, default=3.0, help="one window's length (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="windows per scenario and transport (default 3)")
    p.add_argument("--quick", action="store_true", help="one 1-second window each (the smoke test)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    try:
        results = run(args)
    except BenchError as e:
        print(f"bench.grpc_run: {e}", file=sys.stderr)
        return 1
    out_dir = pathlib.Path(args.out)
    (out_dir / "grpc.json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    (out_dir / "grpc.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
