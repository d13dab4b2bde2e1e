"""The benchmark runs end to end (`python -m bench --quick`): no timing is asserted, only that
every piece ran, answered, and was reported (table, chart, parsed numbers)."""
import csv
import json
import pathlib
import re
import subprocess
import sys

import pytest

from bench.common import BenchError
from bench.wrk import ensure_wrk

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wrk():
    try:
        # Installs Debian's wrk when missing and allowed (root + apt); otherwise says why not.
        return ensure_wrk(install=True)
    except BenchError as e:
        pytest.skip(f"wrk unavailable, benchmark not runnable here: {e}")


SYSTEM_NAMES = ("naive", "kserve", "bentoml", "server", "server x2", "server+batching", "server x2+batching",
                "upper bound", "upper bound, batched")


def _rows(md: str):
    """(system, scenario, requests/s) from the results table."""
    out = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0] in SYSTEM_NAMES:
            out.append((cells[0], cells[1], float(cells[3].replace(",", ""))))
    return out


def test_quick_bench_end_to_end(tmp_path, wrk, mlp_run):
    # Two workers with batching on the MLP and one batching worker on the CNN: the most moving parts of
    # the server, against the upper bounds.
    args = [sys.executable, "-m", "bench", "--quick", "--rounds", "2", "--out", str(tmp_path), "--models", "mlp,cnn",
            "--systems", "server x2+batching,server+batching,upper", "--model_base_path", str(mlp_run.base)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "results.md").read_text()
    png = tmp_path / "bench.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = _rows(md)
    assert {(r[0], r[1]) for r in rows} == {
        *((s, sc) for s in ("server x2+batching", "upper bound", "upper bound, batched")
          for sc in ("1 image, 8 conns", "100 images, 1 conn")),
        *((s, "CNN: 1 image, 8 conns") for s in ("server+batching", "upper bound", "upper bound, batched"))}, md
    for system, scenario, rps in rows:
        assert rps > 0, (system, scenario, md)
    # CPU seconds per 1,000 requests, peak memory: measured for the servers (a number, not a dash).
    numbers = r"[\d,.]+ \| [\d,]+ \| [\d.]+ \| [\d.]+ \| 0 \| \d+\.\d\d \| [\d,]+ \|"
    assert re.search(r"\| server x2\+batching \| 1 image, 8 conns \| 8 \| " + numbers, md), md
    assert re.search(r"\| server\+batching \| CNN: 1 image, 8 conns \| 8 \| " + numbers, md), md
    # The CSV (the chapter's table) holds the same rows, names with commas quoted, and the costs.
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as f:
        table = {(row["system"], row["scenario"]): row for row in csv.DictReader(f)}
    assert set(table) == {(system, scenario) for system, scenario, _ in rows}, table
    for system, scenario, rps in rows:
        row = table[(system, scenario)]
        assert float(row["requests/s"]) == pytest.approx(rps, abs=0.051)
        assert float(row["CPU s per 1000 requests"]) > 0, row
        if not system.startswith("upper bound"):
            assert float(row["start-up s"]) > 0 and float(row["peak RSS MiB"]) > 100, row
    assert "| server x2+batching | MNIST MLP |" in md and "| server+batching | ResNet-style CNN |" in md, md
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
        # (a window lengthened for slow answers, as a cold CNN's warm-up can make it, is measured once)
        assert len(r["extra"]["rounds_rps"]) >= 2 or r["seconds"] > 5, r
        shown = next(rps for system, scenario, rps in rows if (system, scenario) == (r["system"], r["scenario"]))
        assert shown == pytest.approx(min(r["extra"]["rounds_rps"]), abs=0.2 + 0.01 * shown), r
    # The batching servers are compared with the bound that merges requests (8 connections: 8 per call).
    assert "1 image, 8 conns → 8" in md and "CNN: 1 image, 8 conns → 8" in md, md
    assert "| server x2+batching | 1 image, 8 conns |" in md.split("## Ratios")[1], md


PEERS_READY = [name for name in ("kserve", "bentoml")
               if (ROOT / ".venv-peers" / name / "bin" / "python").exists()]


@pytest.mark.skipif(not PEERS_READY, reason="no peer environment in .venv-peers/ (`make peers` creates them; "
                                            "`make bench` does, `make test` does not)")
def test_quick_bench_peers(tmp_path, wrk, mlp_run):
    # Each peer whose environment exists serves the same SavedModel and bodies: answers checked, measured.
    args = [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--systems", ",".join(PEERS_READY),
            "--model_base_path", str(mlp_run.base)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _rows((tmp_path / "results.md").read_text())
    assert {(r[0], r[1]) for r in rows} == {(p, sc) for p in PEERS_READY
                                            for sc in ("1 image, 8 conns", "100 images, 1 conn")}, rows
    assert all(rps > 0 for _, _, rps in rows), rows


def test_a_missing_peer_environment_is_reported_not_crashed(tmp_path, monkeypatch):
    import bench.peers
    monkeypatch.setattr(bench.peers, "ENVS", tmp_path / "nowhere")
    why = bench.peers.PEERS["kserve"].missing()
    assert why is not None and "make peers" in why and "bench/requirements-kserve.txt" in why


def test_report_ratios_against_peers_and_the_batching_goal(tmp_path):
    # The report alone, on made-up numbers: ratios to the naive server and to each peer, the batching
    # pairs on the CNN, and the 1.5x goal judged on requests/s and p99.
    from bench.common import Result, Scenario
    from bench.report import csv_text, markdown, targets
    mlp = Scenario("1 image, 32 conns", "single", 1, 32)
    cnn = Scenario("CNN: 1 image, 32 conns", "single", 1, 32, "cnn")

    def res(system, sc, rps, p99=10.0, cpu=0.5):
        return Result(system, sc, requests=int(rps * 3), seconds=3.0, p50_ms=1.0, p99_ms=p99,
                      cpu_s=cpu * rps * 3 / 1000, peak_rss_mib=700.0, extra={"startup_s": 4.0})
    results = [res("naive", mlp, 100), res("kserve", mlp, 50), res("bentoml", mlp, 200), res("server", mlp, 1000),
               res("server", cnn, 400, p99=200), res("server+batching", cnn, 1000, p99=150, cpu=0.4),
               res("server x2", cnn, 700, p99=100)]
    md = markdown(results, [mlp, cnn], model_desc={"mlp": "m", "cnn": "c"}, seconds=3, elapsed=1, wrk="wrk",
                  quick=False, rounds=3)
    assert "| server | 1 image, 32 conns | 10.0× | 20.0× | 5.0× | – |" in md, md
    assert "| CNN: 1 image, 32 conns | server+batching ÷ server | 2.50× | 200.0 → 150.0 | 0.50 → 0.40 |" in md, md
    assert ("CNN, 32 conns: batching ≥ 1.5× `server`, p99 not worse", "server+batching",
            "2.50×, p99 150.0 vs 200.0 ms", True) in targets(results)
    worse = [r if r.system != "server+batching" else res("server+batching", cnn, 1000, p99=250) for r in results]
    assert ("CNN, 32 conns: batching ≥ 1.5× `server`, p99 not worse", "server+batching",
            "2.50×, p99 250.0 vs 200.0 ms", False) in targets(worse)
    rows = list(csv.DictReader(csv_text(results, [mlp, cnn]).splitlines()))
    assert [r["system"] for r in rows] == ["naive", "kserve", "bentoml", "server", "server", "server x2",
                                           "server+batching"]
    assert rows[0]["CPU s per 1000 requests"] == "0.50" and rows[0]["start-up s"] == "4.0", rows[0]


def test_bench_modules_import_no_cycle():
    # bench/run.py measures and bench/report.py writes: neither may import the other's importer.
    import ast
    modules = {p.stem: p for p in (ROOT / "bench").glob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bench.")}
        graph[name] = deps & set(modules)

    def reaches(start, goal, seen=()):
        return any(d == goal or (d not in seen and reaches(d, goal, (*seen, d))) for d in graph[start])
    cycles = [name for name in graph if reaches(name, name)]
    assert not cycles, {name: graph[name] for name in cycles}
    assert "run" not in graph["report"] and "report" in graph["run"]


def test_median_window_is_the_middle_one_by_rate():
    from bench.upper import median_window
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
