"""The benchmark's results as a Markdown table (results.md) and a chart (bench.png)."""
from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import pathlib
import platform

SERVERS = ("server", "server x2", "server x2+batching")
UPPER = ("upper bound", "upper bound, batched")
ORDER = ("naive",) + SERVERS + UPPER
# Each server's bound: the in-process loop making the model calls that server makes.
BOUND_OF = {"server": "upper bound", "server x2": "upper bound", "server x2+batching": "upper bound, batched"}
ONE_WORKER = ("server",)  # the upper bound is one process: the 70% target compares it with one worker


def _f(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def _find(results, system, scenario_name):
    return next((r for r in results if r.system == system and r.scenario.name == scenario_name), None)


def targets(results) -> list[tuple[str, str, str, bool]]:
    """Issue 6's targets, as (target, system, measured, passed), for each server variant measured."""
    rows = []
    for system in SERVERS:
        s32, n32 = _find(results, system, "1 image, 32 conns"), _find(results, "naive", "1 image, 32 conns")
        if s32 and n32 and n32.rps:
            ratio = s32.rps / n32.rps
            ok = ratio >= 15 and s32.p99_ms is not None and s32.p99_ms < 30 and s32.errors == 0
            rows.append(("1 image at 32 conns: ≥ 15× naive, p99 < 30 ms", system,
                         f"{ratio:.1f}×, p99 {s32.p99_ms:.1f} ms", ok))
        s100, n100 = _find(results, system, "100 images, 8 conns"), _find(results, "naive", "100 images, 8 conns")
        if s100 and n100 and n100.rps:
            ratio = s100.rps / n100.rps
            rows.append(("100 images: ≥ 10× naive", system, f"{ratio:.1f}×", ratio >= 10 and s100.errors == 0))
        for name in ("1 image, 32 conns", "100 images, 8 conns") if system in ONE_WORKER else ():
            s, u = _find(results, system, name), _find(results, BOUND_OF[system], name)
            if s and u and u.rps:
                ratio = s.rps / u.rps
                rows.append((f"{name}: ≥ 70% of the in-process upper bound ({u.extra['group']} per call)",
                             system, f"{ratio:.1%}", ratio >= 0.7))
    return rows


def markdown(results, scenarios, *, model_desc, seconds, elapsed, wrk, quick, failures=None, when=None,
             rounds=1) -> str:
    lines = [
        "# Benchmark: naive Flask vs this server vs the in-process upper bound",
        "",
        f"- when: {when or now()}; machine: {os.cpu_count()} CPU(s), "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        f"- model: {model_desc}; signature `call`",
        f"- load: `{os.path.basename(wrk)}` over 127.0.0.1, "
        + (f"{rounds} windows of {seconds:g} s per scenario after a 1 s warm-up, the median window shown "
           "(errors: all windows); a window lasts at least 20 mean latencies (at most 30 s, then only one); "
           "each server's upper bound measured right after each of its windows, the median shown"
           if rounds > 1 else f"{seconds:g} s per scenario after a 1 s warm-up")
        + f"{' (quick mode)' if quick else ''}; bench wall time {elapsed:.0f} s",
        "- errors: non-2xx answers plus socket errors (connect, read, write, timeout); "
        "peak RSS: sum of VmHWM over the server's process tree during the scenario",
        "",
        "| system | scenario | conns | requests/s | rows/s | p50 ms | p99 ms | errors | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        for system in ORDER:
            r = _find(results, system, sc.name)
            if r is None:
                continue
            err = str(r.errors) + (f" ({r.error_detail})" if r.error_detail else "")
            lines.append(f"| {system} | {sc.name} | {sc.connections} | {_f(r.rps)} | {_f(r.rows_per_s, 0)} | "
                         f"{_f(r.p50_ms)} | {_f(r.p99_ms)} | {err if system not in UPPER else '–'} | "
                         f"{_f(r.peak_rss_mib, 0)} |")
    ups = [r for r in results if r.system == "upper bound, batched"]
    if ups:
        lines += ["", f"Upper bounds: {ups[0].extra['path']}, in one loop with no HTTP; `upper bound` runs one "
                  "request per model call (as a server without batching), `upper bound, batched` merges "
                  "requests per model call: " + ", ".join(f"{r.scenario.name} → {r.extra['group']}" for r in ups)
                  + "."]
    starts = {r.system: r.extra.get("startup_s") for r in results if r.extra.get("startup_s")}
    if starts:
        lines += ["", "Start-up to AVAILABLE: " + ", ".join(f"{k} {v:.1f} s" for k, v in starts.items()) + "."]

    ratio_rows = []
    for sc in scenarios:
        naive = _find(results, "naive", sc.name)
        for system in SERVERS:
            s, upper = _find(results, system, sc.name), _find(results, BOUND_OF[system], sc.name)
            if s is None:
                continue
            vs_naive = f"{s.rps / naive.rps:.1f}×" if naive and naive.rps else "–"
            vs_upper = f"{s.rps / upper.rps:.0%}" if upper and upper.rps else "–"
            ratio_rows.append(f"| {system} | {sc.name} | {vs_naive} | {vs_upper} |")
    if ratio_rows:
        lines += ["", "## Ratios", "", "Each server against the upper bound that makes its model calls "
                  "(one request per call; merged batches for the batching server).", "",
                  "| system | scenario | ÷ naive | ÷ its upper bound |", "|---|---|---:|---:|"]
        lines += ratio_rows
    t = targets(results)
    if t:
        lines += ["", "## Issue 6 targets", "", "| target | system | measured | |", "|---|---|---|---|"]
        lines += [f"| {name} | {system} | {measured} | {'pass' if ok else 'FAIL'} |" for name, system, measured, ok in t]
    for system, reason in (failures or {}).items():
        last = reason.strip().splitlines()[-1] if reason.strip() else "unknown error"
        lines += ["", f"**{system} was not measured**: {reason.strip().splitlines()[0]} … {last}"]
    lines += ["", "Numbers from one run on a shared machine: other processes' load skews them; "
              "compare ratios within a run, not absolute numbers across runs.", ""]
    return "\n".join(lines)


def chart(results, scenarios, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ORDER if any(r.system == s for r in results)]
    servers = [s for s in systems if s not in UPPER]  # the upper bounds have no latency
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = {s: f"C{i}" for i, s in enumerate(ORDER)}
    xs = range(len(scenarios))
    for ax, shown, value in ((ax1, systems, lambda r: r.rows_per_s), (ax2, servers, lambda r: r.p99_ms or 0)):
        width = 0.8 / max(1, len(shown))
        for i, system in enumerate(shown):
            ys = [value(_find(results, system, sc.name)) if _find(results, system, sc.name) else 0
                  for sc in scenarios]
            ax.bar([x + i * width for x in xs], ys, width, label=system, color=colors[system])
        ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in xs])
        ax.set_xticklabels([sc.name.replace(", ", "\n") for sc in scenarios], fontsize=8)
    for ax, title in ((ax1, "images per second (log)"), (ax2, "p99 latency, ms (log)")):
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("MNIST MLP over TF Serving's REST API (wrk, loopback)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def csv_text(results, scenarios) -> str:
    """The measurements as CSV, scenario by scenario (the chapter shows them with Sphinx's csv-table)."""
    def num(x, digits=1):
        return "–" if x is None else f"{x:.{digits}f}"

    order = [sc.name for sc in scenarios]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["system", "scenario", "connections", "requests/s", "rows/s", "p50 ms", "p99 ms", "errors",
                     "peak RSS MiB"])
    for r in sorted(results, key=lambda r: (order.index(r.scenario.name) if r.scenario.name in order else 99,
                                            ORDER.index(r.system) if r.system in ORDER else 99)):
        upper = r.system in UPPER
        writer.writerow([r.system, r.scenario.name, r.scenario.connections, num(r.rps),
                         num(r.rps * r.scenario.rows, 0), num(r.p50_ms), num(r.p99_ms),
                         "–" if upper else r.errors, num(r.peak_rss_mib, 0)])
    return out.getvalue()


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M")


def write_report(results, scenarios, out_dir: pathlib.Path, **kw) -> str:
    """results.md, results.csv and bench.png, plus results.json with every number measured, from
    which `python -m bench.report DIR` writes the three again (say, after a change to this file)."""
    kw.setdefault("when", now())
    md = markdown(results, scenarios, **kw)
    (out_dir / "results.md").write_text(md, encoding="utf-8")
    (out_dir / "results.csv").write_text(csv_text(results, scenarios), encoding="utf-8")
    chart(results, scenarios, out_dir / "bench.png")
    raw = {"meta": kw, "scenarios": [dataclasses.asdict(sc) for sc in scenarios],
           "results": [{**{f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "scenario"},
                        "scenario": r.scenario.name} for r in results]}
    (out_dir / "results.json").write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return md


def main(argv=None) -> int:
    import argparse

    from bench.run import Result, Scenario
    p = argparse.ArgumentParser(prog="python -m bench.report",
                                description="Write results.md/.csv and bench.png again from a run's results.json.")
    p.add_argument("dir", help="a results directory of `make bench` (holding results.json)")
    out_dir = pathlib.Path(p.parse_args(argv).dir)
    raw = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    scenarios = [Scenario(**sc) for sc in raw["scenarios"]]
    by_name = {sc.name: sc for sc in scenarios}
    results = [Result(**{**r, "scenario": by_name[r["scenario"]]}) for r in raw["results"]]
    write_report(results, scenarios, out_dir, **raw["meta"])
    print(f"wrote {out_dir / 'results.md'}, results.csv and bench.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
