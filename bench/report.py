"""The benchmark's results as a Markdown table (results.md), a CSV (results.csv), a chart (bench.png)
and every number (results.json); `python -m bench.report DIR` writes the first three again from the last."""
from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import pathlib
import platform

from bench.common import Result, Scenario

PEERS = ("kserve", "bentoml")
SERVERS = ("server", "server x2", "server+batching", "server x2+batching")
UPPER = ("upper bound", "upper bound, batched")
ORDER = ("naive",) + PEERS + SERVERS + UPPER
# Each server's bound: the in-process loop making the model calls that server makes.
BOUND_OF = {"server": "upper bound", "server x2": "upper bound",
            "server+batching": "upper bound, batched", "server x2+batching": "upper bound, batched"}
ONE_WORKER = ("server",)  # the upper bound is one process: the 70% target compares it with one worker
# Batching against the same server without it (issue 15's goal: >= 1.5x at 32 connections on the CNN).
BATCHING_PAIRS = (("server+batching", "server"), ("server x2+batching", "server x2"))
MODEL_TITLES = {"mlp": "MNIST MLP", "cnn": "ResNet-style CNN"}


def _f(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def _find(results, system, scenario_name):
    return next((r for r in results if r.system == system and r.scenario.name == scenario_name), None)


def targets(results) -> list[tuple[str, str, str, bool]]:
    """Issue 6's targets (MLP) and issue 15's batching goal (CNN), as (target, system, measured, passed)."""
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
    for batched, plain in BATCHING_PAIRS:
        b, s = _find(results, batched, "CNN: 1 image, 32 conns"), _find(results, plain, "CNN: 1 image, 32 conns")
        if b and s and s.rps and b.p99_ms is not None and s.p99_ms is not None:
            ratio = b.rps / s.rps
            rows.append((f"CNN, 32 conns: batching ≥ 1.5× `{plain}`, p99 not worse", batched,
                         f"{ratio:.2f}×, p99 {b.p99_ms:.1f} vs {s.p99_ms:.1f} ms",
                         ratio >= 1.5 and b.p99_ms <= s.p99_ms and b.errors == 0))
    return rows


def _ratio(a, b, fmt="{:.1f}×"):
    return fmt.format(a.rps / b.rps) if a and b and b.rps else "–"


def _descs(model_desc) -> dict:
    return model_desc if isinstance(model_desc, dict) else {"mlp": model_desc}


def markdown(results, scenarios, *, model_desc, seconds, elapsed, wrk, quick, failures=None, when=None,
             rounds=1) -> str:
    descs = _descs(model_desc)
    lines = [
        "# Benchmark: this server vs the servers users pick instead vs the in-process upper bound",
        "",
        f"- when: {when or now()}; machine: {os.cpu_count()} CPU(s), "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "- models: " + "; ".join(f"{MODEL_TITLES.get(k, k)}: {v}" for k, v in descs.items()) + "; signature `call`",
        f"- load: `{os.path.basename(wrk)}` over 127.0.0.1, "
        + (f"{rounds} windows of {seconds:g} s per scenario after a 1 s warm-up, the median window shown "
           "(errors: all windows); a window lasts at least 20 mean latencies (at most 30 s, then only one); "
           "each server's upper bound measured right after each of its windows, the median shown"
           if rounds > 1 else f"{seconds:g} s per scenario after a 1 s warm-up")
        + f"{' (quick mode)' if quick else ''}; bench wall time {elapsed:.0f} s",
        "- errors: non-2xx answers plus socket errors (connect, read, write, timeout); "
        "CPU s/1000: CPU seconds (user + system) of the system's whole process tree in the window shown, "
        "per 1,000 answered requests, which is also the cores it takes to serve 1,000 requests/s "
        "(the load generator not counted); peak RSS: sum of VmHWM over the process tree during the scenario",
        "",
        "| system | scenario | conns | requests/s | rows/s | p50 ms | p99 ms | errors | CPU s/1000 | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        for system in ORDER:
            r = _find(results, system, sc.name)
            if r is None:
                continue
            err = str(r.errors) + (f" ({r.error_detail})" if r.error_detail else "")
            lines.append(f"| {system} | {sc.name} | {sc.connections} | {_f(r.rps)} | {_f(r.rows_per_s, 0)} | "
                         f"{_f(r.p50_ms)} | {_f(r.p99_ms)} | {err if system not in UPPER else '–'} | "
                         f"{_f(r.cpu_s_per_1000, 2)} | {_f(r.peak_rss_mib, 0)} |")
    ups = [r for r in results if r.system == "upper bound, batched"]
    if ups:
        lines += ["", f"Upper bounds: {ups[0].extra['path']}, in one loop with no HTTP; `upper bound` runs one "
                  "request per model call (as a server without batching), `upper bound, batched` merges "
                  "requests per model call: " + ", ".join(f"{r.scenario.name} → {r.extra['group']}" for r in ups)
                  + "."]
    starts = startups(results)
    if starts:
        lines += ["", "## Start-up and memory", "",
                  "| system | model | start-up to ready, s | peak RSS MiB (any scenario) |", "|---|---|---:|---:|"]
        lines += [f"| {system} | {MODEL_TITLES.get(model, model)} | {s:.1f} | {_f(rss, 0)} |"
                  for (system, model), (s, rss) in starts.items()]

    ratio_rows = []
    for sc in scenarios:
        naive = _find(results, "naive", sc.name)
        peers = [_find(results, p, sc.name) for p in PEERS]
        for system in SERVERS:
            s, upper = _find(results, system, sc.name), _find(results, BOUND_OF[system], sc.name)
            if s is None:
                continue
            cells = [_ratio(s, naive)] + [_ratio(s, p) for p in peers] + [_ratio(s, upper, "{:.0%}")]
            ratio_rows.append(f"| {system} | {sc.name} | " + " | ".join(cells) + " |")
    if ratio_rows:
        lines += ["", "## Ratios", "", "Requests/s of each configuration of this server against the others in "
                  "the same run, and against the upper bound that makes its model calls (one request per call; "
                  "merged batches for the batching servers).", "",
                  "| system | scenario | ÷ naive | ÷ kserve | ÷ bentoml | ÷ its upper bound |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += ratio_rows
    batching = []
    for sc in scenarios:
        for batched, plain in BATCHING_PAIRS:
            b, s = _find(results, batched, sc.name), _find(results, plain, sc.name)
            if b and s and s.rps and sc.model == "cnn":
                batching.append(f"| {sc.name} | {batched} ÷ {plain} | {b.rps / s.rps:.2f}× | "
                                f"{_f(s.p99_ms)} → {_f(b.p99_ms)} | {_f(s.cpu_s_per_1000, 2)} → "
                                f"{_f(b.cpu_s_per_1000, 2)} |")
    if batching:
        lines += ["", "## Batching on the CNN", "",
                  "| scenario | pair | requests/s | p99 ms | CPU s/1000 |", "|---|---|---:|---:|---:|"] + batching
    t = targets(results)
    if t:
        lines += ["", "## Targets", "", "| target | system | measured | |", "|---|---|---|---|"]
        lines += [f"| {name} | {system} | {measured} | {'pass' if ok else 'FAIL'} |"
                  for name, system, measured, ok in t]
    for system, reason in (failures or {}).items():
        last = reason.strip().splitlines()[-1] if reason.strip() else "unknown error"
        lines += ["", f"**{system} was not measured**: {reason.strip().splitlines()[0]} … {last}"]
    lines += ["", "Numbers from one run on a shared machine: other processes' load skews them; "
              "compare ratios within a run, not absolute numbers across runs.", ""]
    return "\n".join(lines)


def startups(results) -> dict:
    """(system, model) -> (start-up seconds, the highest peak RSS of its scenarios), servers only."""
    out = {}
    for r in results:
        if r.extra.get("startup_s") is None:
            continue
        key = (r.system, r.scenario.model)
        rss = [x for x in (r.peak_rss_mib, out.get(key, (None, None))[1]) if x is not None]
        out[key] = (r.extra["startup_s"], max(rss) if rss else None)
    return out


def chart(results, scenarios, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in MODEL_TITLES if any(sc.model == m for sc in scenarios)]
    fig, axes = plt.subplots(len(models), 2, figsize=(13, 4.6 * len(models)), squeeze=False)
    colors = {s: f"C{i}" for i, s in enumerate(ORDER)}
    for row, model in zip(axes, models):
        scs = [sc for sc in scenarios if sc.model == model]
        systems = [s for s in ORDER if any(r.system == s and r.scenario.model == model for r in results)]
        servers = [s for s in systems if s not in UPPER]  # the upper bounds have no latency
        xs = range(len(scs))
        for ax, shown, value in ((row[0], systems, lambda r: r.rows_per_s), (row[1], servers, lambda r: r.p99_ms or 0)):
            width = 0.8 / max(1, len(shown))
            for i, system in enumerate(shown):
                ys = [value(_find(results, system, sc.name)) if _find(results, system, sc.name) else 0 for sc in scs]
                ax.bar([x + i * width for x in xs], ys, width, label=system, color=colors[system])
            ax.set_xticks([x + width * (len(shown) - 1) / 2 for x in xs])
            ax.set_xticklabels([sc.name.replace("CNN: ", "").replace(", ", "\n") for sc in scs], fontsize=8)
            ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
        row[0].set_title(f"{MODEL_TITLES[model]}: images per second (log)")
        row[1].set_title(f"{MODEL_TITLES[model]}: p99 latency, ms (log)")
    handles, labels = {}, {}
    for ax in axes[:, 0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    labels = [s for s in ORDER if s in handles]
    fig.legend([handles[s] for s in labels], labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("TF Serving's REST API, same SavedModel and bodies for every server (wrk, loopback)")
    fig.tight_layout(rect=(0, 0.05 / len(models), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


CSV_HEADER = ["system", "scenario", "connections", "requests/s", "rows/s", "p50 ms", "p99 ms", "errors",
              "CPU s per 1000 requests", "peak RSS MiB", "start-up s"]


def csv_text(results, scenarios) -> str:
    """The measurements as CSV, scenario by scenario (the chapter shows them with Sphinx's csv-table)."""
    def num(x, digits=1):
        return "–" if x is None else f"{x:.{digits}f}"

    order = [sc.name for sc in scenarios]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in sorted(results, key=lambda r: (order.index(r.scenario.name) if r.scenario.name in order else 99,
                                            ORDER.index(r.system) if r.system in ORDER else 99)):
        upper = r.system in UPPER
        writer.writerow([r.system, r.scenario.name, r.scenario.connections, num(r.rps),
                         num(r.rps * r.scenario.rows, 0), num(r.p50_ms), num(r.p99_ms),
                         "–" if upper else r.errors, num(r.cpu_s_per_1000, 2), num(r.peak_rss_mib, 0),
                         num(r.extra.get("startup_s"))])
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


def load(out_dir: pathlib.Path) -> tuple[list[Result], list[Scenario], dict]:
    """A run's results, scenarios and settings, read back from its results.json."""
    raw = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    scenarios = [Scenario(**sc) for sc in raw["scenarios"]]
    by_name = {sc.name: sc for sc in scenarios}
    results = [Result(**{**r, "scenario": by_name[r["scenario"]]}) for r in raw["results"]]
    return results, scenarios, raw["meta"]


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.report",
                                description="Write results.md/.csv and bench.png again from a run's results.json.")
    p.add_argument("dir", help="a results directory of `make bench` (holding results.json)")
    out_dir = pathlib.Path(p.parse_args(argv).dir)
    results, scenarios, meta = load(out_dir)
    write_report(results, scenarios, out_dir, **meta)
    print(f"wrote {out_dir / 'results.md'}, results.csv and bench.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
