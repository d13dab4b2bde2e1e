"""bench/grpc_run.py end to end, quick: one server on both ports, REST and gRPC answers compared before
the load, one short window of each transport and its bound per scenario. Speed is `make bench`'s business."""
import json
import shutil
import subprocess
import sys

import pytest

from bench import grpc_run

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tools():
    missing = [t for t in ("wrk", "h2load") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make test installs them as root): the gRPC bench cannot run")


def test_quick_grpc_bench(tmp_path, tools, mlp_run):
    done = subprocess.run([sys.executable, "-m", "bench.grpc_run", "--quick", "--no-install", "--out", str(tmp_path),
                           "--model_base_path", str(mlp_run.base)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "grpc.json").read_text())
    assert [row["scenario"] for row in results["rows"]] == [name for name, _, _ in grpc_run.SCENARIOS]
    for row in results["rows"]:
        assert row["errors"] == 0, row
        for transport in ("rest", "grpc"):
            window = row[transport]
            assert window["rps"] > 0 and window["bound_rps"] > 0 and window["p99_ms"] >= window["p50_ms"] > 0
        assert row["grpc_noop"]["rps"] > 0 and row["grpc_noop"]["errors"] == 0
    table = (tmp_path / "grpc.md").read_text()
    assert "| 100 images, 8 conns |" in table and table in done.stdout


def test_median_window_and_failed_call_count():
    windows = [{"rps": 3.0}, {"rps": 1.0}, {"rps": 2.0}, {"rps": 5.0}]
    assert grpc_run.median_of(windows, "rps") == {"rps": 2.0}
    assert grpc_run.median_of(windows[:3], "rps") == {"rps": 2.0}
    page = "\n".join([
        "# TYPE :tensorflow:serving:request_count counter",
        ':tensorflow:serving:request_count{model_name="MLP",status="OK"} 120.0',
        ':tensorflow:serving:request_count{model_name="MLP",status="NOT_FOUND"} 3.0',
        ':tensorflow:serving:request_count{model_name="MLP",status="INVALID_ARGUMENT"} 2.0',
        ':tensorflow:serving:request_latency_count{model_name="MLP",API="Predict",entrypoint="GRPC"} 9.0'])
    assert grpc_run.count_not_ok(page) == 5.0


def test_recorded_table_is_the_recorded_run():
    # The chapter shows docs/_static/bench/grpc.md: it must be what grpc_run writes for grpc.json.
    recorded = ROOT / "docs" / "_static" / "bench"
    results = json.loads((recorded / "grpc.json").read_text())
    assert grpc_run.markdown(results) == (recorded / "grpc.md").read_text()
    assert all(row["errors"] == 0 for row in results["rows"])


def test_numbers_the_chapter_quotes_are_the_recorded_run():
    recorded = ROOT / "docs" / "_static" / "bench"
    rows = {row["scenario"]: row for row in json.loads((recorded / "grpc.json").read_text())["rows"]}
    one, hundred = rows["1 image, 32 conns"], rows["100 images, 8 conns"]
    text = "".join(line.strip() for line in (ROOT / "docs" / "benchmarks.rst").read_text(encoding="utf-8").splitlines())
    g100, r100 = hundred["grpc"]["rps"], hundred["rest"]["rps"]
    for phrase in (f"gRPC 每秒约 {g100:,.0f} 个请求，是 REST（约 {r100:,.0f} 个）的 {g100 / r100:.1f} 倍",
                   f"gRPC 每秒约 {one['grpc']['rps']:,.0f} 个，只有 REST（约 {one['rest']['rps']:,.0f} 个）",
                   f"它每秒也只能处理约 {one['grpc_noop']['rps']:,.0f} 个单张图像的请求"):
        assert phrase in text, phrase
