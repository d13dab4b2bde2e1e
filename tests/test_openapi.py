"""docs/openapi.yaml: it describes every route TF Serving has, and a live server keeps to it.

schemathesis generates requests from the description (its examples, its boundary cases, then random
ones, valid and invalid) and checks each answer: never a 5xx, a status code the description lists, a
documented Content-Type, a body that matches the documented schema. Here a short, deterministic pass
(`make test`); `make fuzz` (scripts/fuzz.py) runs the long one.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from tests.serverproc import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "openapi.yaml"
FUZZ_CONFIG = ROOT / "tests" / "openapi_fuzz.toml"
MODEL = "half_plus_two"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")
MODEL_CONFIG = """model_config_list {
  config {
    name: "half_plus_two"
    base_path: "%s"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
}
"""


def fuzz_server(testdata: pathlib.Path, folder: pathlib.Path, extra_flags=()) -> ServerProcess:
    """The server the description is fuzzed against: half_plus_two (versions 123 and 124, labels
    stable and canary) and the Prometheus page."""
    config = folder / "models.config"
    config.write_text(MODEL_CONFIG % (testdata / "saved_model_half_plus_two_2_versions"))
    return ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=0",
                          f"--monitoring_config_file={testdata / 'monitoring_config.txt'}", *extra_flags])


def run_schemathesis(url: str, report: pathlib.Path, *options: str, timeout: float) -> dict:
    """`st run` against `url`; returns its JSON report (test cases, failures) with its output added."""
    st = pathlib.Path(sys.executable).with_name("st")
    cmd = [str(st), "--config-file", str(FUZZ_CONFIG), "run", str(SPEC), "--url", url, "--checks", CHECKS,
           "--no-color", "--report", "json", "--report-json-path", str(report), *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=report.parent,
                          env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false"))
    doc = json.loads(report.read_text())
    doc["output"] = proc.stdout + proc.stderr
    doc["returncode"] = proc.returncode
    return doc


def test_describes_every_route():
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["openapi"].startswith("3.1")
    wheres = ["", "/versions/{version}", "/labels/{label}"]
    expected = {"/monitoring/prometheus/metrics": {"get"}}
    for where in wheres:
        base = "/v1/models/{model_name}" + where
        expected[base] = {"get"}
        expected[base + "/metadata"] = {"get"}
        for verb in ("predict", "classify", "regress"):
            expected[f"{base}:{verb}"] = {"post"}
    assert {path: set(ops) for path, ops in spec["paths"].items()} == expected
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "200" in codes and "404" in codes, (method, path)
            if method == "post":  # every error an inference request can get
                assert codes >= {"400", "404", "413", "429", "500", "503", "504"}, (method, path)
    errors = [r for name, r in spec["components"]["responses"].items() if name.startswith("E")]
    assert errors and all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                          for r in errors)


@pytest.fixture(scope="module")
def server(testdata, tmp_path_factory):
    with fuzz_server(testdata, tmp_path_factory.mktemp("openapi")) as s:
        s.wait_available(MODEL, every_version=True)
        yield s


def test_schemathesis_short_pass(server, tmp_path):
    doc = run_schemathesis(server.url, tmp_path / "report.json", "--max-examples", "15", "--seed", "1",
                           "--generation-deterministic", "--max-time", "30", timeout=90)
    cases = doc["test_cases"]
    assert doc["operations"]["tested"] == 16, doc["output"][-3000:]
    assert cases["generated"] >= 200, doc["output"][-3000:]
    assert cases["with_failures"] == 0 and not doc["failures"] and not doc["errors"], doc["output"][-6000:]
    assert doc["returncode"] == 0, doc["output"][-3000:]
    # the examples in the description itself answer 200 (the generated cases mostly answer errors)
    assert doc["phases"]["examples"]["status"] == "success"
