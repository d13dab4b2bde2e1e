"""bench/front_end_ab.py runs end to end (one short round, the base being this very commit) and its WSGI
launcher serves the same answers: no timing is asserted, only that the three servers answered and the
ratios, CPU and the goal line were computed from what was measured."""
import json
import subprocess
import sys

import pytest

from bench import front_end_ab
from bench.common import BenchError
from bench.wrk import ensure_wrk

from .serverproc import ROOT

pytestmark = pytest.mark.slow


def test_front_end_bench_one_round(tmp_path):
    try:
        ensure_wrk(install=True)
    except BenchError as e:
        pytest.skip(f"wrk unavailable, benchmark not runnable here: {e}")
    proc = subprocess.run([sys.executable, "-m", "bench.front_end_ab", "--base", "HEAD", "--seconds", "1",
                           "--rounds", "1", "--connections", "4", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "front_end.json").read_text())
    rows = {r["system"]: r for r in result["rows"]}
    assert list(rows) == list(front_end_ab.SYSTEMS)
    assert all(r["rps"] > 0 and r["errors"] == 0 and r["cpu_us_per_request"] > 0 for r in rows.values())
    assert rows["base"]["ratio"] == 1.0
    this = rows["this tree"]
    assert this["ratio"] == pytest.approx(this["rounds_rps"][0] / rows["base"]["rounds_rps"][0], rel=1e-3)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert result["base"] == result["head"] == head.stdout.strip()
    md = (tmp_path / "front_end.md").read_text()
    assert md == front_end_ab.markdown(result)
    assert "| this tree WSGI |" in md
    assert ("is met." if this["ratio"] >= front_end_ab.GOAL else "is NOT met.") in md
    assert not (tmp_path / "front_end_base_tree").exists()   # the worktree is removed afterwards


def test_goal_line_follows_the_ratio():
    def results(ratio):
        rows = [{"system": s, "rps": 100.0 * r, "ratio": r, "cpu_us_per_request": 250.0, "p50_ms": 7.0, "errors": 0}
                for s, r in (("base", 1.0), ("this tree", ratio), ("this tree WSGI", 1.0))]
        return {"rows": rows, "base": "a", "head": "b", "model": "m", "seconds": 1.0, "rounds": 1, "connections": 32,
                "goal": front_end_ab.GOAL, "elapsed_s": 1.0}
    assert "0.96x of the base: the goal, at least 0.95x, is met." in front_end_ab.markdown(results(0.96))
    assert "is NOT met." in front_end_ab.markdown(results(0.6))


def test_recorded_table_is_the_recorded_run():
    # The chapter shows docs/_static/bench/front_end.md: it must be what front_end_ab writes for front_end.json.
    recorded = ROOT / "docs" / "_static" / "bench"
    results = json.loads((recorded / "front_end.json").read_text())
    assert front_end_ab.markdown(results) == (recorded / "front_end.md").read_text()
    assert [r["system"] for r in results["rows"]] == list(front_end_ab.SYSTEMS)
    assert all(r["errors"] == 0 and len(r["rounds_rps"]) == results["rounds"] for r in results["rows"])


def test_numbers_the_docs_quote_are_the_recorded_run():
    results = json.loads((ROOT / "docs" / "_static" / "bench" / "front_end.json").read_text())
    rows = {r["system"]: r for r in results["rows"]}
    base, this, wsgi = rows["base"], rows["this tree"], rows["this tree WSGI"]
    text = (ROOT / "docs" / "benchmarks.rst").read_text(encoding="utf-8")
    chapter = "".join(line.strip() for line in text.splitlines())
    for phrase in (f"现在的代码每秒响应 {wsgi['rps']:,.0f} 个请求，是旧代码的 {wsgi['ratio']:.2f} 倍",
                   f"每秒只有 {this['rps']:,.0f} 个，是旧代码的 {this['ratio']:.2f} 倍",
                   f"每个请求的 CPU 时间从 {base['cpu_us_per_request']:.0f} 微秒"
                   f"增加到 {this['cpu_us_per_request']:.0f} 微秒",
                   f"提交 {results['base']}"):
        assert phrase in chapter, phrase
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for phrase in (f"({results['base']}, WSGI) {base['rps']:,.0f} req/s",
                   f"this tree {this['rps']:,.0f} ({this['ratio']:.2f}×; CPU per request "
                   f"{this['cpu_us_per_request']:.0f} vs {base['cpu_us_per_request']:.0f} µs)",
                   f"{wsgi['rps']:,.0f} ({wsgi['ratio']:.2f}×)"):
        assert phrase in readme, phrase
