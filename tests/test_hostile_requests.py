"""Hostile requests against `python -m server` as a real process, a well-behaved client beside each.

Each case runs the bad client's requests while a good client asks for the model's status and a
prediction every 50 ms; every good request must succeed within a second. The cases: a classify body
whose context would be copied into 100,000 examples (to a model that does not exist, and to one that
does), and request paths, model names and messages that try to write lines into the server's log.
"""
import json
import re
import threading
import time

import grpc
import pytest
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from .conftest import TESTDATA
from .serverproc import ServerProcess

pytestmark = pytest.mark.slow

MODEL = "half_plus_two"
GOOD_BODY = b'{"instances": [1.0, 2.0]}'
GOOD_ANSWER = {"predictions": [2.5, 3.0]}


class GoodClient:
    """Status and predict requests, one every `every` seconds, until stopped; each one's time and result."""

    def __init__(self, url: str, every: float = 0.05):
        self.url, self.every = url, every
        self.results: list[tuple[str, float, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            for what in ("status", "predict"):
                started = time.monotonic()
                try:
                    if what == "status":
                        r = session.get(f"{self.url}/v1/models/{MODEL}", timeout=5)
                        ok = r.status_code == 200 and r.json()["model_version_status"][0]["state"] == "AVAILABLE"
                    else:
                        r = session.post(f"{self.url}/v1/models/{MODEL}:predict", data=GOOD_BODY, timeout=5)
                        ok = r.status_code == 200 and r.json() == GOOD_ANSWER
                    outcome = ok or (r.status_code, r.text[:200])
                except requests.RequestException as exc:
                    outcome = repr(exc)
                self.results.append((what, time.monotonic() - started, outcome))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def check(self, at_least: int = 4):
        assert len(self.results) >= at_least, self.results
        failed = [r for r in self.results if r[2] is not True]
        slow = [r for r in self.results if r[1] >= 1.0]
        assert not failed, failed[:5]
        assert not slow, f"{len(slow)} of {len(self.results)} good requests took a second or more: {slow[:5]}"


@pytest.fixture(scope="module")
def served():
    flags = [f"--model_name={MODEL}", f"--model_base_path={TESTDATA / 'saved_model_half_plus_two_cpu'}",
             "--log_level=debug"]
    with ServerProcess(flags, grpc=True) as server:
        server.wait_available(MODEL)
        yield server


def classify_bomb(model: str, signature: str = "classify_x_to_y", examples: int = 100_000) -> bytes:
    """About 5 MB: a 4 MB context and `examples` small examples (merged: 4 MB x examples, 400 GB)."""
    context = {"pad": "x" * (4 << 20)}
    return json.dumps({"signature_name": signature, "context": context,
                       "examples": [{"x": 1.0} for _ in range(examples)]}).encode()


def test_classify_context_bomb_to_a_missing_model_is_cheap(served):
    body = classify_bomb("nope")
    with GoodClient(served.url) as good:
        time.sleep(0.2)
        started = time.monotonic()
        r = requests.post(f"{served.url}/v1/models/nope:classify", data=body, timeout=60)
        took = time.monotonic() - started
        time.sleep(0.2)
    assert r.status_code == 404, r.text
    assert "Servable not found for request: Latest(nope)" in r.json()["error"]
    assert took < 5, took  # the merge used to take over 10 s (or all the memory) before the 404
    good.check()


@pytest.mark.parametrize("api", ["classify", "regress"])
def test_classify_context_bomb_to_a_real_model_is_refused_before_the_copies(served, api):
    signature = "classify_x_to_y" if api == "classify" else "regress_x_to_y"
    body = classify_bomb(MODEL, signature)
    with GoodClient(served.url) as good:
        time.sleep(0.2)
        r = requests.post(f"{served.url}/v1/models/{MODEL}:{api}", data=body, timeout=60)
        time.sleep(0.2)
    assert r.status_code == 400, r.text
    message = r.json()["error"]
    assert re.fullmatch(r"Request's context of \d+ bytes copied into each of its 100000 examples takes \d+ "
                        r"bytes, more than the limit of \d+ \(8 x --max_request_elements\)", message), message
    good.check()


def test_context_within_the_limit_is_still_merged(served):
    body = json.dumps({"signature_name": "regress_x_to_y", "context": {"x": 80.0},
                       "examples": [{}, {"x": 20.0}]}).encode()
    r = requests.post(f"{served.url}/v1/models/{MODEL}:regress", data=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [42.0, 12.0]}  # the example's own feature wins over the context's


FORGED = "2026-12-02 16:00:00,000 99 INFO server.lifecycle: FORGED line"


def test_a_request_path_cannot_write_a_line_into_the_log(served):
    with GoodClient(served.url) as good:
        r = requests.put(f"{served.url}/v1/x%0A{FORGED.replace(' ', '%20')}", timeout=5)
        r2 = requests.post(f"{served.url}/v1/models/nope%0D%0A{FORGED.replace(' ', '%20')}:predict",
                           data=GOOD_BODY, timeout=5)
    assert r.status_code == 400 and r2.status_code == 400, (r.text, r2.text)  # "Malformed request: ..."
    good.check(at_least=2)
    line = served.wait_log("FORGED line")
    assert not any(x.startswith("2026-12-02 16:00:00") for x in served.log_lines())
    assert "\\nx" not in line and "\\n2026-12-02 16:00:00,000 99 INFO" in line or "\\r\\n2026" in line, line


def test_a_grpc_model_name_cannot_write_a_line_into_the_log(served):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope\n" + FORGED.replace("FORGED", "GRPCFORGED")
    with grpc.insecure_channel(served.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as err:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    line = served.wait_log("GRPCFORGED")
    assert "nope\\n2026-12-02" in line, line
    assert not any(x.startswith("2026-12-02 16:00:00") for x in served.log_lines())


def test_request_errors_stay_out_of_the_log_at_the_default_level():
    flags = [f"--model_name={MODEL}", f"--model_base_path={TESTDATA / 'saved_model_half_plus_two_cpu'}"]
    with ServerProcess(flags) as server:
        server.wait_available(MODEL)
        secret = "Secret-In-The-Request"
        r = requests.post(f"{server.url}/v1/models/{secret}:predict", data=GOOD_BODY, timeout=5)
        assert r.status_code == 404  # the client still gets TF Serving's text
        assert r.json() == {"error": f"Servable not found for request: Latest({secret})"}
        # The server logs a line per loaded version; wait until a later one cannot be missed.
        requests.get(f"{server.url}/v1/models/{MODEL}", timeout=5)
        time.sleep(0.5)
        assert not any(secret in line for line in server.log_lines())
