"""The load generator: Debian's `wrk` with bench/post.lua, over 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

from bench.common import BenchError

LUA = pathlib.Path(__file__).resolve().parent / "post.lua"


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
    """One window of load; wrk's summary as a dict (requests, duration_us, errors, p50_us, p99_us...)."""
    threads = max(1, min(2, connections))
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(LUA), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                          env={**os.environ, "BENCH_BODY": str(body_file)})
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk gave no summary (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


def window_rate(w: dict) -> float:
    """Requests per second of one wrk window."""
    return w["requests"] / (max(w["duration_us"], 1) / 1e6)
