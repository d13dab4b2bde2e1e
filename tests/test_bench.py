"""The benchmark runs end to end (`python -m bench --quick`): no timing is asserted, only that
every piece ran, answered, and was reported (table, chart, parsed numbers)."""
import csv
import json
import pathlib
import re
import subprocess
import sys

import pytest

from bench.run import BenchError, ensure_wrk

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wrk():
    try:
        # Installs Debian's wrk when missing and allowed (root + apt); otherwise says why not.
        return ensure_wrk(install=True)
    except BenchError as e:
        pytest.skip(f"wrk unavailable, benchmark not runnable here: {e}")


SYSTEM_NAMES = ("naive", "server", "server x2", "server x2+batching", "upper bound", "upper bound, batched")


def _rows(md: str):
    """(system, scenario, requests/s) from the results table."""
    out = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0] in SYSTEM_NAMES:
            out.append((cells[0], cells[1], float(cells[3].replace(",", ""))))
    return out


def test_quick_bench_end_to_end(tmp_path, wrk, mlp_run):
    # Two workers with batching: the most moving parts of the server, against the upper bound.
    args = [sys.executable, "-m", "bench", "--quick", "--rounds", "2", "--out", str(tmp_path), "--systems",
            "server x2+batching,upper", "--model_base_path", str(mlp_run.base)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "results.md").read_text()
    png = tmp_path / "bench.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = _rows(md)
    assert {r[0] for r in rows} == {"server x2+batching", "upper bound", "upper bound, batched"}, md
    assert len(rows) == 6, md
    for system, scenario, rps in rows:
        assert rps > 0, (system, scenario, md)
    assert re.search(r"\| server x2\+batching \| 1 image, 8 conns \| 8 \| [\d,.]+ \| [\d,]+ \| [\d.]+ "
                     r"\| [\d.]+ \| 0 \|",
                     md), md
    # The CSV (the chapter's table) holds the same rows, names with commas quoted.
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as f:
        table = {(row["system"], row["scenario"]): row for row in csv.DictReader(f)}
    assert set(table) == {(system, scenario) for system, scenario, _ in rows}, table
    for system, scenario, rps in rows:
        assert float(table[(system, scenario)]["requests/s"]) == pytest.approx(rps, abs=0.051)
    # results.json keeps every number: the report written again from it is the same page.
    again = subprocess.run([sys.executable, "-m", "bench.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "results.md").read_text() == md
    # Two windows per scenario; the batching server's bound (requests merged) was measured right after
    # each of them, the other bound afterwards as often. The table shows the median (lower middle) one.
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["meta"]["rounds"] == 2 and "2 windows of 2 s per scenario" in md, md
    for r in raw["results"]:
        assert len(r["extra"]["rounds_rps"]) >= 2, r
        shown = next(rps for system, scenario, rps in rows if (system, scenario) == (r["system"], r["scenario"]))
        assert shown == pytest.approx(min(r["extra"]["rounds_rps"]), abs=0.2 + 0.01 * shown), r
    # The batching server is compared with the bound that merges requests (8 connections: 8 per call).
    assert "1 image, 8 conns → 8" in md and "| server x2+batching | 1 image, 8 conns |" in md.split("## Ratios")[1], md


def test_median_window_is_the_middle_one_by_rate():
    from bench.run import median_window
    windows = [{"r": 3.0}, {"r": 1.0}, {"r": 2.0}]
    assert median_window(windows, lambda w: w["r"]) == {"r": 2.0}
    assert median_window(windows[:2], lambda w: w["r"]) == {"r": 1.0}   # even count: the lower middle
    assert median_window(windows[:1], lambda w: w["r"]) == {"r": 3.0}


def test_windows_outlast_slow_answers():
    from bench.run import MAX_WINDOW_S, window_seconds
    fast = {"requests": 5000, "mean_us": 2000}
    slow = {"requests": 20, "mean_us": 400_000}
    stuck = {"requests": 3, "mean_us": 900_000}
    assert window_seconds(fast, 3, 32) == 3                   # 20 x 2 ms is shorter than the window
    assert window_seconds(slow, 3, 8) == pytest.approx(8.0)    # 20 x 0.4 s
    assert window_seconds(stuck, 3, 8) == MAX_WINDOW_S         # hardly any answer in the warm-up
    assert window_seconds({"requests": 100, "mean_us": 5e6}, 3, 8) == MAX_WINDOW_S
