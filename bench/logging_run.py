"""`python -m bench.logging_run` (part of `make bench`): what request logging and the access log cost.

Four servers (one worker each, bench/run.py's TensorFlow settings) serve the chapter's MNIST model from the
same --model_config_file, differing only in logging:
  off                 no logging_config, no --access_log
  access log          --access_log=FILE (one JSON line per request)
  request log 0.01    logging_config with sampling_rate 0.01 (PredictionLog records in TFRecord files)
  request log 1.0     logging_config with sampling_rate 1.0
All four are started first and stay up; then each round loads every server in turn (the order rotates
from round to round) with wrk: one image per request, 32 connections, a window of a few seconds. A
server's cost is 1 - (its rate / the rate of "off" in the same round); the median over the rounds is
shown. At the end the servers are stopped (SIGTERM: the request logs are flushed) and the records
each request log wrote are counted against the requests wrk saw answered.

Results: logging.md and logging.json in bench/results/ (or --out DIR), and the table on stdout.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import statistics
import sys
import time

from bench.common import MODEL_NAME, BenchError
from bench.procs import ServerProcess, check_answer, cpu_seconds, free_port
from bench.run import HERE, resolve_mlp, write_bodies
from bench.upper import INTER_OP, INTRA_OP
from bench.wrk import ensure_wrk, run_wrk, window_rate

CONNECTIONS = 32
SYSTEMS = ("off", "access log", "request log 0.01", "request log 1.0")
GOALS = {"request log 0.01": 0.05, "request log 1.0": 0.15}    # the most each may cost


def config_text(model_path: pathlib.Path, prefix: pathlib.Path | None, rate: float) -> str:
    logging = "" if prefix is None else f"""
  logging_config {{
    log_collector_config {{ type: "tfrecord" filename_prefix: "{prefix}" }}
    sampling_config {{ sampling_rate: {rate} }}
  }}"""
    return (f'model_config_list {{ config {{\n  name: "{MODEL_NAME}" base_path: "{model_path}" '
            f'model_platform: "tensorflow"{logging}\n}} }}\n')


def start(system: str, model_path: pathlib.Path, out_dir: pathlib.Path) -> ServerProcess:
    slug = system.replace(" ", "_")
    rate = {"request log 0.01": 0.01, "request log 1.0": 1.0}.get(system)
    prefix = out_dir / "request_logs" / slug / "log" if rate is not None else None
    config = out_dir / f"logging_{slug}.config"
    config.write_text(config_text(model_path, prefix, rate or 0.0))
    port = free_port()
    cmd = [sys.executable, "-m", "server", f"--rest_api_port={port}", "--rest_api_host=127.0.0.1", "--port=0",
           f"--model_config_file={config}", f"--tensorflow_intra_op_parallelism={INTRA_OP}",
           f"--tensorflow_inter_op_parallelism={INTER_OP}", "--workers=1"]
    if system == "access log":
        access = out_dir / "access_log.jsonl"
        access.unlink(missing_ok=True)
        cmd.append(f"--access_log={access}")
    server = ServerProcess(system, cmd, port, out_dir / f"logging_{slug}.log")
    server.start()
    return server


def records_written(server: ServerProcess) -> tuple[int, int] | None:
    """(written, dropped) from the server's last log line about its request log, once it has stopped."""
    found = re.findall(r"Request log closed: (\d+) record\(s\) written, (\d+) dropped", server.log_tail(100000))
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.logging_run", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(HERE / "results"), help="results directory (default bench/results)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per window (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the median is shown (default 5)")
    p.add_argument("--model_base_path", default=None, help="MLP to serve (default: the MNIST export)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    args = p.parse_args(argv)
    out_dir = pathlib.Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        wrk = ensure_wrk(install=not args.no_install)
        model_path, model_desc = resolve_mlp(args.model_base_path, out_dir)
        body = write_bodies(out_dir)["single"]
    except BenchError as e:
        print(f"bench.logging_run: error: {e}", file=sys.stderr)
        return 1
    servers: dict[str, ServerProcess] = {}
    rates: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    cpu: dict[str, list[float]] = {s: [] for s in SYSTEMS}
    answered = dict.fromkeys(SYSTEMS, 0)
    errors = dict.fromkeys(SYSTEMS, 0)
    t0 = time.monotonic()
    try:
        for system in SYSTEMS:
            servers[system] = start(system, model_path, out_dir)
            print(f"bench.logging_run: {system} ready after {servers[system].startup_s:.1f} s", flush=True)
        for system, server in servers.items():
            check_answer(server.port, body, 1)
            warm = run_wrk(wrk, f"http://127.0.0.1:{server.port}/v1/models/{MODEL_NAME}:predict", body,
                           CONNECTIONS, 1)
            answered[system] += 1 + warm["requests"]
        for r in range(args.rounds):
            order = SYSTEMS[r % len(SYSTEMS):] + SYSTEMS[:r % len(SYSTEMS)]
            for system in order:
                server = servers[system]
                cpu0 = cpu_seconds(server.proc.pid)
                w = run_wrk(wrk, f"http://127.0.0.1:{server.port}/v1/models/{MODEL_NAME}:predict", body,
                            CONNECTIONS, args.seconds)
                cpu[system].append((cpu_seconds(server.proc.pid) - cpu0) / max(w["requests"], 1) * 1000)
                rates[system].append(window_rate(w))
                answered[system] += w["requests"]
                errors[system] += sum(w[k] for k in ("connect", "read", "write", "status", "timeout"))
            print(f"bench.logging_run: round {r + 1}: " + ", ".join(
                f"{s} {rates[s][-1]:.0f} req/s" for s in SYSTEMS), flush=True)
    except BenchError as e:
        print(f"bench.logging_run: error: {e}", file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            server.stop()
    elapsed = time.monotonic() - t0

    rows = []
    for system in SYSTEMS:
        ratios = [a / b for a, b in zip(rates[system], rates["off"])]
        ratio = statistics.median(ratios)
        written = records_written(servers[system]) if system.startswith("request log") else None
        goal = GOALS.get(system)
        rows.append({"system": system, "rps": statistics.median(rates[system]), "ratio": ratio,
                     "cost": 1 - ratio, "ratios": [round(x, 3) for x in ratios],
                     "rounds_rps": [round(x, 1) for x in rates[system]],
                     "cpu_s_per_1000": statistics.median(cpu[system]), "errors": errors[system],
                     "answered": answered[system], "records_written": written and written[0],
                     "records_dropped": written and written[1], "goal_cost": goal,
                     "goal_met": None if goal is None else (1 - ratio) <= goal})
    lines = [f"# Logging cost: 1 image, {CONNECTIONS} connections, one worker",
             "",
             f"Model: {model_desc}. {args.rounds} rounds of one {args.seconds:g} s window per server (the order "
             f"rotating), ratio = rate / rate of `off` in the same round, median shown; {elapsed:.0f} s in all.",
             "",
             "| logging | req/s | ratio to off | cost | goal | CPU s / 1000 req | errors | answered "
             "| records written |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        goal = "" if row["goal_cost"] is None else (
            f"≤ {row['goal_cost']:.0%}: {'met' if row['goal_met'] else 'NOT met'}")
        dropped = f" (+{row['records_dropped']:,} dropped)" if row["records_dropped"] else ""
        records = "" if row["records_written"] is None else f"{row['records_written']:,}{dropped}"
        lines.append(f"| {row['system']} | {row['rps']:,.1f} | {row['ratio']:.3f} | {row['cost']:.1%} | {goal} "
                     f"| {row['cpu_s_per_1000']:.2f} | {row['errors']} | {row['answered']:,} | {records} |")
    lines += ["", "`answered`: requests wrk saw answered (warm-up included); a window's end can leave a few "
              "requests answered but not counted, so `records written` at sampling 1.0 may pass it by up to "
              f"{CONNECTIONS} a window."]
    md = "\n".join(lines) + "\n"
    (out_dir / "logging.md").write_text(md)
    (out_dir / "logging.json").write_text(json.dumps({"rows": rows, "seconds": args.seconds, "rounds": args.rounds,
                                                      "connections": CONNECTIONS, "elapsed_s": elapsed}, indent=1))
    print(md)
    print(f"bench.logging_run: results in {out_dir / 'logging.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
