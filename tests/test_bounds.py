"""Bounded work per request, on a live server: --rest_api_max_body_bytes (413) and
--max_request_elements (400), each said in --help; answers in TF Serving's JSON error format."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(testdata):
    base = testdata / "saved_model_half_plus_two_2_versions"
    with ServerProcess([f"--model_base_path={base}", "--model_name=hp2", "--file_system_poll_wait_seconds=0",
                        "--rest_api_max_body_bytes=2000", "--max_request_elements=10"]) as s:
        s.wait_available("hp2")
        yield s


def predict(server, body, **kw):
    return requests.post(f"{server.url}/v1/models/hp2:predict", data=body, timeout=30, **kw)


def test_body_limit(server):
    session = requests.Session()
    small = json.dumps({"instances": [1.0] * 10, "pad": "x" * 1800}).encode()
    assert len(small) <= 2000
    assert session.post(f"{server.url}/v1/models/hp2:predict", data=small, timeout=30).status_code == 200
    big = json.dumps({"instances": [1.0], "pad": "x" * 2000}).encode()
    for r in (session.post(f"{server.url}/v1/models/hp2:predict", data=big, timeout=30),
              predict(server, iter([big[:1000], big[1000:]])),  # chunked: no Content-Length
              session.post(f"{server.url}/v1/models/hp2:predict", data=b"x" * 100_000_000, timeout=60)):
        assert r.status_code == 413, r.text
        assert r.headers["Content-Type"] == "application/json"
        assert r.json() == {"error": "Request body is larger than the limit of 2000 bytes (--rest_api_max_body_bytes)"}
    # the connection is still usable afterwards
    r = session.post(f"{server.url}/v1/models/hp2:predict", data=b'{"instances": [2.0]}', timeout=30)
    assert r.status_code == 200 and r.json() == {"predictions": [3.0]}


def test_element_limit(server):
    assert predict(server, json.dumps({"instances": [1.0] * 10})).status_code == 200
    r = predict(server, json.dumps({"instances": [1.0] * 11}))
    assert r.status_code == 400
    assert r.json() == {"error": "Request has 11 tensor elements, more than the limit of 10 (--max_request_elements)"}
    r = predict(server, json.dumps({"inputs": {"x": [[1.0, 2.0]] * 6}}))
    assert r.status_code == 400 and "12 tensor elements" in r.json()["error"]
    body = json.dumps({"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}] * 11})
    r = requests.post(f"{server.url}/v1/models/hp2:regress", data=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"].startswith("Request has 11 examples, more than the limit of 10")


def test_bounds_in_help():
    text = subprocess.run([sys.executable, "-m", "server", "--help"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    flat = " ".join(text.split())
    assert "--rest_api_max_body_bytes N Largest request body in bytes (0 = no limit)" in flat
    assert "within the 2 GiB that deploy/kubernetes gives a pod. [default: 16777216 = 16 MiB]" in flat  # the formula
    assert "--max_request_elements N Most tensor elements one predict request may send" in flat
    assert "--rest_api_timeout_in_ms MS Timeout for one REST request in milliseconds" in flat
    assert "the time the request waits for its batch" in flat
    assert "--batching_queue_timeout_in_ms MS With batching, the longest any request (REST or gRPC) may wait" in flat
