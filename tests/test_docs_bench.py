"""The benchmark numbers the chapter quotes (docs/benchmarks.rst) are those of the recorded run it shows
(docs/_static/bench/results.csv, copied from `make bench`), not typed by hand."""
import csv
import pathlib

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
S32, S100, C1, C8, C32, C128 = ("1 image, 32 conns", "100 images, 8 conns", "CNN: 1 image, 1 conn",
                                "CNN: 1 image, 8 conns", "CNN: 1 image, 32 conns", "CNN: 1 image, 128 conns")


def measured():
    with open(DOCS / "_static" / "bench" / "results.csv", encoding="utf-8") as f:
        return {(row["system"], row["scenario"]): row for row in csv.DictReader(f)}


def expected_phrases(m) -> list[str]:
    def num(system, scenario, column):
        return float(m[(system, scenario)][column])

    def rps(system, scenario):
        return num(system, scenario, "requests/s")

    def p99(system, scenario):
        return num(system, scenario, "p99 ms")

    def cpu(system, scenario):
        return num(system, scenario, "CPU s per 1000 requests")

    def start(system, scenario):
        return num(system, scenario, "start-up s")

    def rss(system):
        return max(float(row["peak RSS MiB"]) for (s, sc), row in m.items() if s == system and "CNN" not in sc)

    one, naive, ks, bm, x2 = (rps(s, S32) for s in ("server", "naive", "kserve", "bentoml", "server x2"))
    one100, ks100, bm100 = (rps(s, S100) for s in ("server", "kserve", "bentoml"))
    b = {sc: rps("server+batching", sc) / rps("server", sc) for sc in (C1, C8, C32, C128)}
    return [
        f"简单的 Flask 服务器每秒约 {naive:,.0f} 个请求，p99 约 {p99('naive', S32):,.0f} 毫秒",
        f"KServe 每秒约 {ks:,.0f} 个请求，p99 约 {p99('kserve', S32):,.0f} 毫秒；"
        f"BentoML 约 {bm:,.0f} 个，p99 约 {p99('bentoml', S32):,.0f} 毫秒",
        f"一个工作进程的服务器每秒约 {one:,.0f} 个请求，p99 约 {p99('server', S32):,.0f} 毫秒，"
        f"是 KServe 的 {one / ks:.1f} 倍、BentoML 的 {one / bm:.1f} 倍、简单的 Flask 服务器的 {one / naive:.1f} 倍",
        f"两个工作进程每秒约 {x2:,.0f} 个请求",
        f"一个工作进程达到约 {one / rps('upper bound', S32):.0%}，"
        f"100 张图像时约 {one100 / rps('upper bound', S100):.0%}",
        f"KServe 每秒约 {ks100:,.1f} 个请求，BentoML 约 {bm100:,.1f} 个，"
        f"一个工作进程的服务器约 {one100:,.0f} 个（{one100 / ks100:.0f} 倍、{one100 / bm100:.0f} 倍）",
        f"本仓库的服务器约 {cpu('server', S32):.2f} 秒，KServe 约 {cpu('kserve', S32):.2f} 秒，"
        f"BentoML 约 {cpu('bentoml', S32):.2f} 秒",
        f"启动到可以响应请求，本仓库的服务器约 {start('server', S32):.0f} 秒（两个工作进程约 "
        f"{start('server x2', S32):.0f} 秒），KServe 约 {start('kserve', S32):.0f} 秒，"
        f"BentoML 约 {start('bentoml', S32):.0f} 秒",
        f"峰值内存一个工作进程约 {rss('server'):,.0f} MiB，两个约 {rss('server x2'):,.0f} MiB，"
        f"KServe 约 {rss('kserve'):,.0f} MiB，BentoML 约 {rss('bentoml'):,.0f} MiB",
        f"32 个连接时 ``server+batching`` 每秒约 {rps('server+batching', C32):,.0f} 个请求，"
        f"是不开批处理的 ``server`` （约 {rps('server', C32):,.0f} 个）的 {b[C32]:.1f} 倍，"
        f"p99 从约 {p99('server', C32):,.0f} 毫秒变为约 {p99('server+batching', C32):,.0f} 毫秒",
        f"1 个连接时为 {b[C1]:.1f} 倍，8 个连接时 {b[C8]:.1f} 倍，128 个连接时 {b[C128]:.1f} 倍",
        f"两个不开批处理的工作进程（``server x2``）每秒约 {rps('server x2', C32):,.0f} 个",
        f"每 1,000 个请求的 CPU 时间从约 {cpu('server', C32):.2f} 秒变为约 {cpu('server+batching', C32):.2f} 秒",
    ]


def test_quoted_numbers_come_from_the_recorded_run():
    text = (DOCS / "benchmarks.rst").read_text(encoding="utf-8")
    flat = "".join(line.strip() for line in text.splitlines())
    missing = [phrase for phrase in expected_phrases(measured()) if phrase not in flat]
    assert not missing, "\n".join(missing)


def test_every_system_and_scenario_was_measured():
    m = measured()
    systems = {s for s, _ in m}
    assert systems == {"naive", "kserve", "bentoml", "server", "server x2", "server+batching", "server x2+batching",
                       "upper bound", "upper bound, batched"}
    scenarios = {sc for _, sc in m}
    assert {S32, S100, C1, C8, C32, C128} <= scenarios
    for (system, scenario), row in m.items():
        assert float(row["requests/s"]) > 0, (system, scenario)
        assert float(row["CPU s per 1000 requests"]) > 0, (system, scenario)
        if not system.startswith("upper bound"):
            assert float(row["start-up s"]) > 0 and float(row["peak RSS MiB"]) > 0, (system, scenario)
        if system.startswith("server"):  # the peers' errors (time-outs under load) are theirs to show
            assert row["errors"] == "0", (system, scenario)
