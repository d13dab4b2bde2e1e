"""What the benchmark's runner and its report share: scenarios, results, the error they raise.

Kept apart so that bench/report.py (which writes results) and bench/run.py (which measures them)
each import this module and neither imports the other's caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MODEL_NAME = "MLP"        # the name every system serves the model under (the chapter's)
SIGNATURE = "call"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    body: str            # key into the bodies written by bench.run.write_bodies()
    rows: int            # images per request
    connections: int
    model: str = "mlp"   # which model the scenario serves: "mlp" (the chapter's) or "cnn" (bench/model.py)


@dataclass
class Result:
    system: str
    scenario: Scenario
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    error_detail: str = ""
    peak_rss_mib: float | None = None
    cpu_s: float | None = None      # CPU seconds the system's processes used in the window shown
    extra: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.scenario.rows

    @property
    def cpu_s_per_1000(self) -> float | None:
        """CPU seconds per 1,000 requests: also the cores it takes to serve 1,000 requests/s."""
        return None if self.cpu_s is None or not self.requests else 1000 * self.cpu_s / self.requests
