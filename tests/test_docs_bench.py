"""The benchmark numbers the chapter quotes (docs/scaling.rst) are those of the recorded run it shows
(docs/_static/bench/results.csv, copied from `make bench`), not typed by hand."""
import csv
import pathlib

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def measured():
    with open(DOCS / "_static" / "bench" / "results.csv", encoding="utf-8") as f:
        return {(row["system"], row["scenario"]): row for row in csv.DictReader(f)}


def test_quoted_numbers_come_from_the_recorded_run():
    m = measured()
    text = (DOCS / "scaling.rst").read_text(encoding="utf-8")
    naive32, x2_32 = m[("naive", "1 image, 32 conns")], m[("server x2", "1 image, 32 conns")]
    one32, upper32 = m[("server", "1 image, 32 conns")], m[("upper bound", "1 image, 32 conns")]
    naive100, x2_100 = m[("naive", "100 images, 8 conns")], m[("server x2", "100 images, 8 conns")]
    rps = lambda row: float(row["requests/s"])  # noqa: E731
    expected = [
        f"每秒处理约 {rps(naive32):,.0f} 个请求，p99 延迟约 {float(naive32['p99 ms']):,.0f} 毫秒",
        f"一个工作进程的服务器每秒约 {rps(one32):,.0f} 个请求，p99 约 {float(one32['p99 ms']):,.0f} 毫秒",
        f"两个工作进程的服务器每秒约 {rps(x2_32):,.0f} 个请求（约 {rps(x2_32) / rps(naive32):.0f} 倍），"
        f"p99 约 {float(x2_32['p99 ms']):,.0f} 毫秒",
        f"每秒只能处理约 {rps(naive100):,.0f} 个请求",
        f"两个工作进程每秒约 {rps(x2_100):,.0f} 个请求（约 {rps(x2_100) / rps(naive100):.0f} 倍）",
        f"一个工作进程只达到上限的约 {rps(one32) / rps(upper32):.0%}",
    ]
    flat = "".join(line.strip() for line in text.splitlines())
    for phrase in expected:
        assert phrase in flat, phrase


def test_every_system_and_scenario_was_measured_without_errors():
    m = measured()
    systems = {s for s, _ in m}
    assert systems == {"naive", "server", "server x2", "server x2+batching", "upper bound"}
    for (system, scenario), row in m.items():
        assert float(row["requests/s"]) > 0, (system, scenario)
        if system != "upper bound":
            assert row["errors"] == "0", (system, scenario)
