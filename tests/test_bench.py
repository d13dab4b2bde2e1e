"""The benchmark runs end to end (`python -m bench --quick`): no timing is asserted, only that
every piece ran, answered, and was reported (table, chart, parsed numbers)."""
import os
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


def _server_importable() -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-c", "import server.app"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    return proc.returncode == 0, (proc.stderr.strip().splitlines() or [""])[-1]


def _rows(md: str):
    """(system, scenario, requests/s) from the results table."""
    out = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0] in ("naive", "server", "server+batching", "upper bound"):
            out.append((cells[0], cells[1], float(cells[3].replace(",", ""))))
    return out


def test_quick_bench_end_to_end(tmp_path, wrk):
    ok, why = _server_importable()
    # The real server when it can start; until then the harness still proves itself on the naive baseline.
    systems = "server+batching,upper" if ok else "naive,upper"
    model_cache = ROOT / "bench" / "results" / "standin_model"
    args = [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--systems", systems]
    if model_cache.is_dir() and not (ROOT / "code/zh/savedmodel/saved_with_signature").is_dir():
        args += ["--model_base_path", str(model_cache)]          # reuse an exported stand-in: faster
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (tmp_path / "results.md").read_text()
    png = tmp_path / "bench.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = _rows(md)
    measured = {r[0] for r in rows}
    assert measured == ({"server+batching", "upper bound"} if ok else {"naive", "upper bound"}), md
    assert len(rows) == 4, md
    for system, scenario, rps in rows:
        assert rps > 0, (system, scenario, md)
    assert re.search(r"\| (server\+batching|naive) \| 1 image, 8 conns \| 8 \| [\d,.]+ \| [\d,]+ \| [\d.]+ \| [\d.]+ \| 0 \|",
                     md), md
    if not ok:
        pytest.xfail(f"python -m server cannot start yet ({why}); harness checked on the naive baseline only")

