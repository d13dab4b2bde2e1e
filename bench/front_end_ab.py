"""`python -m bench.front_end_ab` (part of `make bench`): one worker's REST throughput, this tree against an
earlier commit, in the same run.

Three servers (one worker each, bench/run.py's TensorFlow settings, the same model and body) stay up:
  base            `python -m server` from a git worktree of --base (default 22ca52c: the last commit before
                  round 3, whose REST front end was granian's WSGI interface)
  this tree       `python -m server` from this repository (granian's RSGI interface, server/rest/rsgi.py:
                  a body is read on the event loop before a handler runs)
  this tree WSGI  this tree's app under granian's WSGI interface (bench/wsgi_front_end.py; not safe against
                  slow clients, measured only to tell the front end's cost from the handlers')
Each round loads every server in turn (the order rotating) with wrk: one image per request, --connections
connections, a window of --seconds. A server's ratio is its rate / the base's rate in the same round; the
median over the rounds is shown, with the CPU time per request of its whole process tree.

Results: front_end.md and front_end.json in bench/results/ (or --out DIR), and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

from bench.common import MODEL_NAME, BenchError
from bench.procs import ROOT, ServerProcess, check_answer, cpu_seconds, free_port
from bench.run import HERE, resolve_mlp, write_bodies
from bench.upper import INTER_OP, INTRA_OP
from bench.wrk import ensure_wrk, run_wrk, window_rate

BASE = "22ca52c"
SYSTEMS = ("base", "this tree", "this tree WSGI")
GOAL = 0.95   # this tree's single-image rate, at least this share of the base's


def checkout(rev: str, directory: pathlib.Path) -> str:
    """A detached git worktree of `rev` at `directory` (replacing one left there); returns its short hash."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()
    if directory.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(directory)],
                       capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
    git("worktree", "prune")
    git("worktree", "add", "--detach", "--force", str(directory), rev)
    return git("-C", str(directory), "rev-parse", "--short", "HEAD")


def remove_checkout(directory: pathlib.Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(directory)], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def start(system: str, model_path: pathlib.Path, out_dir: pathlib.Path, base_tree: pathlib.Path) -> ServerProcess:
    port = free_port()
    module = "bench.wsgi_front_end" if system == "this tree WSGI" else "server"
    cmd = [sys.executable, "-m", module, f"--rest_api_port={port}", "--rest_api_host=127.0.0.1", "--port=0",
           f"--model_name={MODEL_NAME}", f"--model_base_path={model_path}",
           f"--tensorflow_intra_op_parallelism={INTRA_OP}", f"--tensorflow_inter_op_parallelism={INTER_OP}",
           "--workers=1"]
    server = ServerProcess(system, cmd, port, out_dir / f"front_end_{system.replace(' ', '_')}.log",
                           cwd=base_tree if system == "base" else ROOT)
    server.start()
    return server


def markdown(results: dict) -> str:
    """front_end.md from what front_end.json holds."""
    rows = results["rows"]
    lines = [f"# REST front end: 1 image, {results['connections']} connections, one worker",
             "",
             f"Model: {results['model']}. base = {results['base']}, this tree = {results['head']}. "
             f"{results['rounds']} rounds of one {results['seconds']:g} s window per server (the order rotating); "
             f"ratio = rate / base's rate in the same round, median shown; {results['elapsed_s']:.0f} s in all.",
             "",
             "| server | req/s | ratio to base | CPU µs / req | p50 latency ms | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['system']} | {row['rps']:,.1f} | {row['ratio']:.3f} | {row['cpu_us_per_request']:.0f} "
                     f"| {row['p50_ms']:.1f} | {row['errors']} |")
    this = next(r for r in rows if r["system"] == "this tree")
    lines += ["", f"This tree at {this['ratio']:.2f}x of the base: the goal, at least {results['goal']:.2f}x, is "
              f"{'met' if this['ratio'] >= results['goal'] else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.front_end_ab", description=__doc__.splitlines()[0])
    p.add_argument("--base", default=BASE, help=f"the commit to compare with (default {BASE})")
    p.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per window (default 4)")
    p.add_argument("--rounds", type=int, default=6, help="rounds; the median is shown (default 6)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--model_base_path", default=None, help="MLP to serve (default: the MNIST export)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)
    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    base_tree = out_dir / "front_end_base_tree"
    servers: dict[str, ServerProcess] = {}
    rates: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    cpu: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    p50: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    errors = dict.fromkeys(SYSTEMS, 0)
    t0 = time.monotonic()
    try:
        wrk = ensure_wrk(install=not args.no_install)
        model_path, model_desc = resolve_mlp(args.model_base_path, out_dir)
        body = write_bodies(out_dir)["single"]
        base_rev = checkout(args.base, base_tree)
        head_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip() or "?"
        for system in SYSTEMS:
            servers[system] = start(system, model_path, out_dir, base_tree)
            print(f"bench.front_end_ab: {system} ready after {servers[system].startup_s:.1f} s", flush=True)
        for server in servers.values():
            check_answer(server.port, body, 1)
            run_wrk(wrk, f"http://127.0.0.1:{server.port}/v1/models/{MODEL_NAME}:predict", body, args.connections, 1)
        for r in range(args.rounds):
            order = SYSTEMS[r % len(SYSTEMS):] + SYSTEMS[:r % len(SYSTEMS)]
            for system in order:
                server = servers[system]
                cpu0 = cpu_seconds(server.proc.pid)
                w = run_wrk(wrk, f"http://127.0.0.1:{server.port}/v1/models/{MODEL_NAME}:predict", body,
                            args.connections, args.seconds)
                cpu[system].append((cpu_seconds(server.proc.pid) - cpu0) / max(w["requests"], 1) * 1e6)
                rates[system].append(window_rate(w))
                p50[system].append(w["p50_us"] / 1000)
                errors[system] += sum(w[k] for k in ("connect", "read", "write", "status", "timeout"))
            print(f"bench.front_end_ab: round {r + 1}: " + ", ".join(
                f"{s} {rates[s][-1]:.0f} req/s" for s in SYSTEMS), flush=True)
    except BenchError as e:
        print(f"bench.front_end_ab: error: {e}", file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            server.stop()
        remove_checkout(base_tree)
    elapsed = time.monotonic() - t0

    rows = []
    for system in SYSTEMS:
        ratios = [a / b for a, b in zip(rates[system], rates["base"])]
        rows.append({"system": system, "rps": statistics.median(rates[system]), "ratio": statistics.median(ratios),
                     "ratios": [round(x, 3) for x in ratios], "rounds_rps": [round(x, 1) for x in rates[system]],
                     "cpu_us_per_request": statistics.median(cpu[system]), "p50_ms": statistics.median(p50[system]),
                     "errors": errors[system]})
    results = {"rows": rows, "base": base_rev, "head": head_rev, "model": model_desc, "seconds": args.seconds,
               "rounds": args.rounds, "connections": args.connections, "goal": GOAL, "elapsed_s": elapsed}
    md = markdown(results)
    (out_dir / "front_end.md").write_text(md)
    (out_dir / "front_end.json").write_text(json.dumps(results, indent=1))
    print(md)
    print(f"bench.front_end_ab: results in {out_dir / 'front_end.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
