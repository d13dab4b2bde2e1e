"""bench/logging_run.py runs end to end (one short round): no timing is asserted, only that the four servers
answered, the ratios were computed and the request logs' records were counted."""
import json
import subprocess
import sys

import pytest

from bench.common import BenchError
from bench.wrk import ensure_wrk

from .serverproc import ROOT

pytestmark = pytest.mark.slow


def test_logging_bench_one_round(tmp_path):
    try:
        ensure_wrk(install=True)
    except BenchError as e:
        pytest.skip(f"wrk unavailable, benchmark not runnable here: {e}")
    proc = subprocess.run([sys.executable, "-m", "bench.logging_run", "--seconds", "1", "--rounds", "1",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["system"]: r for r in json.loads((tmp_path / "logging.json").read_text())["rows"]}
    assert list(rows) == ["off", "access log", "request log 0.01", "request log 1.0"]
    assert all(r["rps"] > 0 and r["errors"] == 0 for r in rows.values())
    assert rows["off"]["ratio"] == 1.0
    # Sampling 1.0 logs every request wrk saw answered (and at most a window's connections more), none dropped
    every = rows["request log 1.0"]
    assert every["answered"] <= every["records_written"] <= every["answered"] + 2 * 32
    assert every["records_dropped"] == 0
    assert rows["request log 0.01"]["records_written"] < every["records_written"]
    access = (tmp_path / "access_log.jsonl").read_text().splitlines()
    assert len(access) >= rows["access log"]["answered"]
    assert "| request log 1.0 |" in (tmp_path / "logging.md").read_text()
