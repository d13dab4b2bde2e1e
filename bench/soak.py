"""`make soak`: mixed REST traffic against `python -m server` for minutes, with a version swap every 30 s.

A model folder of its own (TF Serving's half_plus_two, copied to a temporary folder) gets a new version
every --swap-seconds (written under a temporary name, then renamed into place, as a deployment should)
and the oldest is removed; the server loads each new version and unloads the old one. Meanwhile
--threads clients send predict (row and columnar), classify, regress, status and metadata requests.
At the start, at every swap and at the end it reads the RSS and thread count of the server's
processes from /proc. It reports requests, errors, RSS and threads at start and end.
Goal: 0 errors, RSS and threads flat.

    python -m bench.soak --minutes 10 [--threads 4] [--workers 1] [--batching] [--out soak.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import ServerProcess  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "tf_serving_testdata" / "saved_model_half_plus_two_2_versions"
MODEL = "hp2"
# (name, method, path suffix, body, check of the answer)
CALLS = [
    ("predict row", "POST", ":predict", {"instances": [1.0, 2.0, 5.0]},
     lambda d: d["predictions"] == [2.5, 3.0, 4.5]),
    ("predict columnar", "POST", ":predict", {"inputs": {"x": [[1.0], [2.0]]}},
     lambda d: d["outputs"] == [[2.5], [3.0]]),
    ("regress", "POST", ":regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
     lambda d: d["results"] == [42.0]),
    ("classify", "POST", ":classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]},
     lambda d: d["results"] == [[["", 12.0]]]),
    ("status", "GET", "", None, lambda d: any(v["state"] == "AVAILABLE" for v in d["model_version_status"])),
    ("metadata", "GET", "/metadata", None,
     lambda d: "serving_default" in d["metadata"]["signature_def"]["signature_def"]),
]


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (granian's workers), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in pathlib.Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def usage(pid: int) -> dict:
    """RSS (MiB) and threads, summed over the server's processes."""
    rss = threads = procs = 0
    for p in process_tree(pid):
        try:
            fields = dict(line.split(":", 1) for line in pathlib.Path(f"/proc/{p}/status").read_text().splitlines())
        except OSError:
            continue
        rss += int(fields["VmRSS"].split()[0]) if "VmRSS" in fields else 0
        threads += int(fields["Threads"])
        procs += 1
    return {"rss_mib": round(rss / 1024, 1), "threads": threads, "processes": procs}


class Traffic:
    def __init__(self, url: str, threads: int):
        self.url = url
        self.counts: collections.Counter = collections.Counter()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, offset: int) -> None:
        session, i = requests.Session(), offset
        while not self._stop.is_set():
            name, method, suffix, body, check = CALLS[i % len(CALLS)]
            i += 1
            try:
                r = session.request(method, f"{self.url}/v1/models/{MODEL}{suffix}",
                                    data=None if body is None else json.dumps(body), timeout=30)
                ok = r.status_code == 200 and check(r.json())
                problem = None if ok else f"{name}: {r.status_code} {r.text[:200]}"
            except Exception as e:  # a reset, a timeout, a body that is not JSON: all errors
                problem = f"{name}: {type(e).__name__}: {e}"
                session = requests.Session()
            with self._lock:
                self.counts[name] += 1
                if problem:
                    self.errors.append(problem)


def add_version(base: pathlib.Path, number: int) -> None:
    """Version `number` (alternately TF Serving's 123 and 124 files), renamed into place when complete."""
    source = FIXTURE / ("00000123" if number % 2 else "00000124")
    tmp = base / f".tmp-{number}"
    shutil.copytree(source, tmp)
    os.rename(tmp, base / str(number))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--swap-seconds", type=float, default=30)
    p.add_argument("--threads", type=int, default=4, help="client threads")
    p.add_argument("--workers", type=int, default=1, help="server --workers")
    p.add_argument("--batching", action="store_true", help="server --enable_batching")
    p.add_argument("--out", help="write every sample and the totals as JSON")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        base = pathlib.Path(tmp) / MODEL
        base.mkdir()
        version = 1
        add_version(base, version)
        flags = [f"--model_name={MODEL}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1",
                 f"--workers={args.workers}", "--log_level=warning"]
        if args.batching:
            flags.append("--enable_batching")
        with ServerProcess(flags) as server:
            server.wait_available(MODEL, str(version), timeout=300)
            traffic = Traffic(server.url, args.threads)
            traffic.start()
            time.sleep(min(10.0, args.swap_seconds / 3))  # warm: first requests, lazy allocations
            samples = [{"t": 0.0, "version": version, "requests": sum(traffic.counts.values()),
                        **usage(server.proc.pid)}]
            print(f"soak: {args.minutes} min, {args.threads} client threads, {args.workers} worker(s)"
                  f"{', batching' if args.batching else ''}; a new version every {args.swap_seconds:.0f} s")
            print(f"  start: {samples[0]}", flush=True)
            started = time.monotonic()
            end = started + args.minutes * 60
            next_swap = started + args.swap_seconds
            while time.monotonic() < end:
                time.sleep(max(0.0, min(next_swap, end) - time.monotonic()))
                if time.monotonic() >= end:
                    break
                version += 1
                add_version(base, version)
                for old in base.iterdir():  # keep two versions on disk: the new one and the one serving
                    if old.name.isdigit() and int(old.name) < version - 1:
                        shutil.rmtree(old)
                next_swap += args.swap_seconds
                sample = {"t": round(time.monotonic() - started, 1), "version": version,
                          "requests": sum(traffic.counts.values()), "errors": len(traffic.errors),
                          **usage(server.proc.pid)}
                samples.append(sample)
                print(f"  {sample}", flush=True)
            try:
                server.wait_available(MODEL, str(version), timeout=120)
            finally:
                traffic.stop()
            last = {"t": round(time.monotonic() - started, 1), "version": version,
                    "requests": sum(traffic.counts.values()), **usage(server.proc.pid)}
            alive = server.proc.poll() is None
    first = samples[0]
    # Growth per swap, fitted over the second half of the run (the first swaps also warm caches up).
    half = samples[len(samples) // 2:] + [last]
    def slope(key):
        if len(half) < 2:
            return 0.0
        return (half[-1][key] - half[0][key]) / max(1, half[-1]["version"] - half[0]["version"])
    summary = {
        "minutes": args.minutes, "versions_published": version - 1, "requests": dict(traffic.counts),
        "total_requests": sum(traffic.counts.values()), "errors": len(traffic.errors),
        "error_examples": traffic.errors[:10], "server_alive": alive,
        "start": first, "end": last,
        "rss_mib_per_swap_second_half": round(slope("rss_mib"), 2),
        "threads_per_swap_second_half": round(slope("threads"), 2),
    }
    print(f"\nrequests: {summary['total_requests']} ({', '.join(f'{k} {v}' for k, v in traffic.counts.items())})")
    print(f"errors: {summary['errors']}" + "".join(f"\n  {e}" for e in summary["error_examples"]))
    print(f"versions published: {summary['versions_published']}")
    print(f"RSS: {first['rss_mib']} MiB at start, {last['rss_mib']} MiB at end "
          f"({summary['rss_mib_per_swap_second_half']:+} MiB per swap over the second half)")
    print(f"threads: {first['threads']} at start, {last['threads']} at end "
          f"({summary['threads_per_swap_second_half']:+} per swap over the second half)")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps({"summary": summary, "samples": samples + [last]}, indent=1))
    return 0 if summary["errors"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
