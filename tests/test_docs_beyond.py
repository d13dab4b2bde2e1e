"""The numbers docs/scale_out.rst quotes are those of the recorded multi-node Ray run it shows
(docs/_static/ray/results.json, written by `python -m tests.ray_scenario --out docs/_static/ray`)."""
from __future__ import annotations

import json
import pathlib
import re

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "scale_out.rst"
RESULTS = DOCS / "_static" / "ray" / "results.json"

# substitution name in the page -> where its value is in results.json
QUOTED = {
    "replica_nodes": lambda r: r["replica_nodes"],
    "parity_requests": lambda r: r["parity"]["requests"],
    "parity_compared": lambda r: r["parity"]["answers_compared"],
    "parity_identical": lambda r: r["parity"]["identical"],
    "new_version_first": lambda r: r["new_version"]["seconds_until_each"][0],
    "new_version_last": lambda r: r["new_version"]["seconds_until_each"][-1],
    "kill_clients": lambda r: r["node_kill"]["clients"],
    "kill_requests": lambda r: r["node_kill"]["requests"],
    "kill_failures": lambda r: r["node_kill"]["failures"],
    "kill_status": lambda r: ", ".join(map(str, r["node_kill"]["failure_statuses"])),
    "kill_last_failure": lambda r: r["node_kill"]["last_failure_s_after_kill"],
    "replaced_s": lambda r: r["node_replaced"]["seconds_until_running"],
    "scale_down_s": lambda r: r["autoscale"]["seconds_to_scale_down"],
    "scale_clients": lambda r: r["autoscale"]["clients"],
    "scale_up_s": lambda r: r["autoscale"]["seconds_to_scale_up"],
    "scale_requests": lambda r: r["autoscale"]["requests"],
    "scale_failures": lambda r: r["autoscale"]["failures"],
    "total_s": lambda r: r["total_s"],
}


def substitutions() -> dict[str, str]:
    return dict(re.findall(r"^\.\. \|(\w+)\| replace:: (.+)$", PAGE.read_text(encoding="utf-8"), re.MULTILINE))


def test_every_quoted_number_is_the_recorded_one():
    results = json.loads(RESULTS.read_text())
    subs = substitutions()
    assert set(subs) == set(QUOTED), set(subs) ^ set(QUOTED)
    wrong = {name: (subs[name], where(results)) for name, where in QUOTED.items() if subs[name] != str(where(results))}
    assert not wrong, wrong


def test_the_recorded_run_is_one_that_passed():
    """The run the page shows meets what tests/test_ray_serve.py asks of every run."""
    r = json.loads(RESULTS.read_text())
    assert r["replica_nodes"] == 2 and r["non_loopback_listeners"] == []
    assert r["parity"]["identical"] == r["parity"]["answers_compared"] > 0
    assert r["new_version"]["replicas_with_version_2"] == 2
    assert r["node_kill"]["failures"] == r["node_kill"]["failures_after_kill"]
    assert r["node_kill"]["failures_after_kill"] <= 0.05 * r["node_kill"]["requests_after_kill"]
    assert r["node_replaced"]["replicas_running"] == 2
    scaling = r["autoscale"]
    assert scaling["settled"] == {"RUNNING": 1} and scaling["failures"] == 0
    assert (scaling["loaded_replicas"], scaling["idle_replicas"]) == (2, 1)
