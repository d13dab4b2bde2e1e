"""The harness's side of the in-process upper bound (bench/upper_bound.py): one subprocess per model,
up for the whole run, measuring when asked, right after each window of the server it bounds."""
from __future__ import annotations

import json
import os
import pathlib
import select
import subprocess
import sys
import time

from bench.common import BenchError, Result, Scenario
from bench.procs import ROOT, end_child

# A small model runs fastest with each op in the request's own thread (no hand-off to TensorFlow's
# pools, measured ~100 us -> ~25 us per call for the MLP): the parallelism comes from concurrent
# requests and from worker processes. The servers and the upper bound load the model with these.
INTRA_OP, INTER_OP = 1, -1


def median_window(windows: list, rate):
    """The window with the median rate (the lower middle one for an even count)."""
    ranked = sorted(windows, key=rate)
    return ranked[(len(ranked) - 1) // 2]


def upper_groups(sc: Scenario, max_batch_size: int) -> dict[str, int]:
    """Requests per model call for each upper bound: one (no batching), or the batches a batching
    server forms at best: every waiting request (one per connection), at most max_batch_size rows."""
    return {"upper bound": 1, "upper bound, batched": max(1, min(sc.connections, max_batch_size // sc.rows))}


class UpperBound:
    """bench/upper_bound.py in its own process for the whole run, measuring when asked.

    Every measurement of one (body, requests per call) is kept; the tables show the median one.
    """

    def __init__(self, model_path: pathlib.Path, bodies: dict, seconds: float, out_dir: pathlib.Path,
                 max_batch_size: int, label: str = "mlp"):
        self.bodies, self.seconds, self.max_batch_size = bodies, seconds, max_batch_size
        self.samples: dict[tuple[str, int], list[dict]] = {}
        self.error: str | None = None
        self._pending = b""  # read from its stdout, not yet a whole line
        self._log = open(out_dir / f"upper_bound_{label}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.upper_bound", "--model_base_path", str(model_path),
             f"--intra_op={INTRA_OP}", f"--inter_op={INTER_OP}"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self._expect("UPPER_READY", timeout=240)

    def _expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line that starts with `prefix`, waiting at most `timeout` s.

        Reads the pipe's bytes itself: a buffered reader could hold a whole line that select()
        would then never report."""
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix):
                    return text[len(prefix):].strip()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._pending += chunk
        self.close()
        tail = (pathlib.Path(self._log.name).read_text(errors="replace"))[-2000:]
        self.error = f"upper bound gave no {prefix.strip()} line:\n{tail}"
        raise BenchError(self.error)

    def measure(self, sc: Scenario, group: int) -> dict:
        if self.error is not None:
            raise BenchError(self.error)
        item = {"body": str(self.bodies[sc.body]), "group": group, "seconds": self.seconds}
        try:
            self.proc.stdin.write((json.dumps(item) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:  # the process is gone; _expect below says what it logged
            print(f"bench: upper bound: {e}", file=sys.stderr, flush=True)
        m = json.loads(self._expect("UPPER_JSON ", timeout=self.seconds + 120))
        self.samples.setdefault((sc.body, group), []).append(m)
        return m

    def measure_after(self, sc: Scenario, bound: str) -> None:
        """Measure `bound` for `sc` now (right after a server's window); errors are reported once, later."""
        if self.error is None:
            try:
                self.measure(sc, upper_groups(sc, self.max_batch_size)[bound])
            except BenchError:
                pass

    def results(self, scenarios, rounds: int) -> list[Result]:
        """One row per scenario and bound: the median of its measurements (taken now if none was)."""
        out = []
        for sc in scenarios:
            for system, group in upper_groups(sc, self.max_batch_size).items():
                while len(self.samples.get((sc.body, group), [])) < rounds:
                    self.measure(sc, group)
                samples = self.samples[(sc.body, group)]
                m = median_window(samples, lambda m: m["requests_per_s"])
                out.append(Result(system, sc, requests=m["requests"], seconds=m["seconds"], cpu_s=m.get("cpu_s"),
                                  extra={"path": m["path"], "group": group,
                                         "rounds_rps": [round(x["requests_per_s"], 1) for x in samples]}))
        return out

    def close(self) -> None:
        if self._log.closed:
            return
        end_child(self.proc)
        self._log.close()
