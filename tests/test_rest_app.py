"""The REST contract through Flask's test client, on TF Serving's own test models.

Every row of ../shared/tf-serving-rest-contract.md that can be checked in-process is here; the same
requests against a real `python -m server` process are in test_server_process.py.
"""
import io
import json
import threading

import numpy as np
import pytest

from server.batching.parameters import BatchingParameters
from server.batching.scheduler import Batcher
from server.dataplane import DataPlane
from server.rest.app import create_app
from server.rest.handlers import RestAPI

from .conftest import recording_batcher_for, settled_manager

CONFIG = """
model_config_list {
  config {
    name: "half_plus_two"
    base_path: "%(td)s/saved_model_half_plus_two_2_versions"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
  config { name: "tf2" base_path: "%(td)s/saved_model_half_plus_two_tf2_cpu" model_platform: "tensorflow" }
  config { name: "counter" base_path: "%(td)s/saved_model_counter" model_platform: "tensorflow" }
  config { name: "half_plus_three" base_path: "%(td)s/saved_model_half_plus_three" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="module")
def manager(testdata, tmp_path_factory):
    with settled_manager(CONFIG % {"td": testdata}, tmp_path_factory.mktemp("cfg")) as mgr:
        yield mgr


@pytest.fixture(scope="module")
def client(manager):
    return create_app(RestAPI(DataPlane(manager))).test_client()


def post(client, path, doc):
    body = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    r = client.post(path, data=body)
    return r.status_code, json.loads(r.data)


def error(client, method, path, body=b""):
    r = client.open(path, method=method, data=body)
    assert r.content_type == "application/json"
    doc = json.loads(r.data)
    assert list(doc) == ["error"], doc
    return r.status_code, doc["error"]


# -- predict ------------------------------------------------------------------------------

def test_predict_row_format_known_answer(client):
    assert post(client, "/v1/models/half_plus_two:predict", {"instances": [[1.0], [2.0], [5.0]]}) == (
        200, {"predictions": [[2.5], [3.0], [4.5]]})


def test_predict_fixture_readme_and_tutorial_answers(client):
    # The fixture README's answer (TF Serving's handler test) and the TF Serving tutorial's request: `x`
    # is declared [-1, 1], but it is an intermediate tensor of the TF1 graph (not a Placeholder), which
    # TF Serving feeds whatever its shape; the model is elementwise, so both work there and here.
    assert post(client, "/v1/models/half_plus_two:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]}) == (
        200, {"predictions": [[2.5, 3.0], [3.5, 4.0]]})
    assert post(client, "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]}) == (
        200, {"predictions": [2.5, 3.0, 4.5]})
    # Its dtype is still checked before the model runs.
    code, msg = error(client, "POST", "/v1/models/half_plus_two:predict", json.dumps({"instances": [["a"]]}))
    assert code == 400 and "not of expected type: float" in msg


def test_placeholder_inputs_are_fed_whatever_their_declared_shape(client):
    # The TF2 export's x is a Placeholder of shape [1]; TF Serving feeds a [1,2] tensor all the same, and
    # the model (0.5x + 2, element-wise) answers. (This request was refused here before.)
    assert post(client, "/v1/models/tf2:predict", {"instances": [[1.0, 2.0]]}) == (
        200, {"predictions": [[2.5, 3.0]]})


def test_predict_columnar_format(client):
    status, doc = post(client, "/v1/models/half_plus_two:predict", {"inputs": {"x": [[1.0], [3.0]]}})
    assert (status, doc) == (200, {"outputs": [[2.5], [3.5]]})
    status, doc = post(client, "/v1/models/half_plus_two:predict", {"inputs": [[1.0], [3.0]]})
    assert (status, doc) == (200, {"outputs": [[2.5], [3.5]]})


def test_predict_by_version_and_label(client):
    for path in ("/v1/models/half_plus_two/versions/123:predict", "/v1/models/half_plus_two/labels/stable:predict",
                 "/v1/models/half_plus_two/labels/canary:predict"):
        assert post(client, path, {"instances": [[4.0]]}) == (200, {"predictions": [[4.0]]})


def test_half_plus_three_answers_as_tf_serving(client):
    # Its signature declares x as a scalar while the graph's x:0 is [?, 1]; TF Serving serves it (its
    # integration test sends x = 2.0 as a tensor of shape [1] and expects 4.0), and so does this server.
    doc = json.loads(client.get("/v1/models/half_plus_three").data)
    (status,) = doc["model_version_status"]
    assert status["version"] == "123" and status["state"] == "AVAILABLE"
    assert post(client, "/v1/models/half_plus_three:predict", {"inputs": {"x": [2.0]}}) == (200, {"outputs": [4.0]})
    assert post(client, "/v1/models/half_plus_three:predict", {"instances": [2.0]}) == (200, {"predictions": [4.0]})


def test_predict_tf2_export(client):
    assert post(client, "/v1/models/tf2:predict", {"instances": [3.0]}) == (200, {"predictions": [3.5]})


def test_predict_nan_and_infinity_tokens(client):
    r = client.post("/v1/models/half_plus_two:predict", data='{"instances": [[NaN], [Infinity], [-Infinity]]}')
    assert r.status_code == 200
    assert r.data.replace(b" ", b"").replace(b"\n", b"") == b'{"predictions":[[NaN],[Infinity],[-Infinity]]}'


def test_counter_model_is_served(client):
    # A stateful TF1 model with reference variables (tf.saved_model.load cannot load it; the session loader
    # can). Its signatures take no input, which TF Serving's REST predict refuses with this message.
    doc = json.loads(client.get("/v1/models/counter/metadata").data)
    assert set(doc["metadata"]["signature_def"]["signature_def"]) == {
        "incr_counter", "incr_counter_by", "reset_counter", "get_counter"}
    code, msg = error(client, "POST", "/v1/models/counter:predict",
                      json.dumps({"signature_name": "incr_counter", "inputs": {}}))
    assert (code, msg) == (400, "Failed to get input map for signature: incr_counter")


def test_predict_errors(client):
    p = "/v1/models/half_plus_two:predict"
    code, msg = error(client, "POST", p, b"")
    assert code == 400 and "JSON Parse error: The document is empty" in msg
    code, msg = error(client, "POST", p, b"not json")
    assert code == 400 and "JSON Parse error: Invalid value" in msg
    code, msg = error(client, "POST", p, json.dumps({"signature_name": 5, "instances": [[1.0]]}))
    assert code == 400 and msg.endswith("not formatted correctly. 'signature_name' key must be a string value.")
    code, msg = error(client, "POST", p, json.dumps({"foo": 1}))
    assert code == 400 and "Missing 'inputs' or 'instances' key" in msg
    code, msg = error(client, "POST", p, json.dumps({"signature_name": "nope", "instances": [[1.0]]}))
    assert (code, msg) == (400, 'Serving signature name: "nope" not found in signature def')
    code, msg = error(client, "POST", p, json.dumps({"instances": [["a"]]}))
    assert code == 400 and "not of expected type: float" in msg
    code, msg = error(client, "POST", p, json.dumps({"instances": [[1.0], [1.0, 2.0]]}))
    assert code == 400 and ("Expecting tensor size" in msg or "Expecting shape" in msg)


# -- classify / regress -------------------------------------------------------------------

def test_regress_known_answer(client):
    assert post(client, "/v1/models/half_plus_two:regress",
                {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}) == (200, {"results": [42.0]})


def test_regress_with_context(client):
    status, doc = post(client, "/v1/models/half_plus_two:regress",
                       {"signature_name": "regress_x_to_y", "context": {"x": 10.0}, "examples": [{}, {}]})
    assert (status, doc) == (200, {"results": [7.0, 7.0]})


def test_classify_known_answer(client):
    assert post(client, "/v1/models/half_plus_two:classify",
                {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}) == (
        200, {"results": [[["", 12.0]]]})


def test_classify_wrong_signature_method(client):
    code, msg = error(client, "POST", "/v1/models/half_plus_two:classify",
                      json.dumps({"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]}))
    # TF Serving checks the method_name only with --enable_signature_method_name_check (test_dataplane.py);
    # without it, a regression signature is refused for its outputs.
    assert code == 400 and 'Expected classification signature outputs to contain at least one of "classes"' in msg
    code, msg = error(client, "POST", "/v1/models/half_plus_two:regress", json.dumps({"examples": [1]}))
    assert code == 400 and "Example must be JSON object" in msg


# -- status and metadata ------------------------------------------------------------------

def test_model_status(client):
    r = client.get("/v1/models/half_plus_two")
    assert r.status_code == 200
    doc = json.loads(r.data)
    versions = {s["version"]: s for s in doc["model_version_status"]}
    assert set(versions) == {"123", "124"}
    for s in versions.values():
        assert s["state"] == "AVAILABLE"
        assert s["status"] == {"error_code": "OK", "error_message": ""}
    one = json.loads(client.get("/v1/models/half_plus_two/versions/123").data)
    assert [s["version"] for s in one["model_version_status"]] == ["123"]
    labelled = json.loads(client.get("/v1/models/half_plus_two/labels/canary").data)
    assert [s["version"] for s in labelled["model_version_status"]] == ["124"]


def test_model_metadata(client):
    r = client.get("/v1/models/half_plus_two/versions/123/metadata")
    assert r.status_code == 200
    doc = json.loads(r.data)
    assert doc["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "123"}
    sigs = doc["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) >= {"serving_default", "classify_x_to_y", "regress_x_to_y"}
    assert list(sigs) == sorted(sigs)  # a stable order, whatever the proto map's
    x = sigs["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and x["name"] == "x:0"
    assert [d["size"] for d in x["tensor_shape"]["dim"]] == ["-1", "1"]
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert sigs["classify_x_to_y"]["inputs"]["inputs"]["tensor_shape"]["unknown_rank"] is True
    latest = json.loads(client.get("/v1/models/half_plus_two/metadata").data)
    assert latest["model_spec"]["version"] == "124"


# -- routing errors -----------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/models/half_plus_two:predict"),
    ("POST", "/v1/models/half_plus_two/version/123:predict"),
    ("POST", "/v1/models/half_plus_two/versions/abc:predict"),
    ("POST", "/v1/models/half_plus_two/versions/123/labels/stable:predict"),
    ("POST", "/v1/models/half_plus_two/metadata"),
    ("PUT", "/v1/models/half_plus_two"),
    ("POST", "/v1/models/half_plus_two:explain"),
])
def test_malformed_requests(client, method, path):
    code, msg = error(client, method, path, b"{}")
    assert (code, msg) == (400, f"Malformed request: {method} {path}")


def test_missing_model_name(client):
    assert error(client, "GET", "/v1/models") == (400, "Missing model name in request.")


def test_version_out_of_int64(client):
    code, msg = error(client, "GET", "/v1/models/half_plus_two/versions/99999999999999999999")
    assert code == 400 and msg.startswith("Failed to convert version: 99999999999999999999")


def test_unknown_model_version_label(client):
    code, _ = error(client, "POST", "/v1/models/nope:predict", b'{"instances": [[1.0]]}')
    assert code == 404
    code, _ = error(client, "POST", "/v1/models/half_plus_two/versions/7:predict", b'{"instances": [[1.0]]}')
    assert code == 404
    code, _ = error(client, "GET", "/v1/models/nope")
    assert code == 404
    code, msg = error(client, "GET", "/v1/models/half_plus_two/labels/nope")
    assert code == 400 and "Unrecognized servable version label" in msg


def test_paths_match_case_insensitively(client):
    assert post(client, "/V1/MODELS/half_plus_two:predict", {"instances": [[1.0]]}) == (
        200, {"predictions": [[2.5]]})


def test_non_v1_path_is_json_404(client):
    r = client.get("/healthz")
    assert r.status_code == 404 and r.content_type == "application/json"
    assert "/healthz" in json.loads(r.data)["error"]


def test_long_paths_are_routed_but_not_memoised(client):
    # Paths are memoised up to app._ROUTE_CACHE_MAX_PATH characters; a longer one is routed afresh
    # (same answers) and never kept, so clients cannot grow the cache with long URLs.
    from server.rest import app as app_mod
    long_name = "m" * (app_mod._ROUTE_CACHE_MAX_PATH + 1)
    before = app_mod._route_cached.cache_info().currsize
    code, msg = error(client, "POST", f"/v1/models/{long_name}:predict", b'{"instances": [[1.0]]}')
    assert (code, msg) == (404, f"Servable not found for request: Latest({long_name})")
    code, msg = error(client, "POST", f"/v1/models/{long_name}:explain", b"{}")
    assert (code, msg) == (400, f"Malformed request: POST /v1/models/{long_name}:explain")
    padded = "/v1/models/half_plus_two/versions/" + "0" * app_mod._ROUTE_CACHE_MAX_PATH + "123:predict"
    assert post(client, padded, {"instances": [[1.0]]}) == (200, {"predictions": [[2.5]]})
    assert app_mod._route_cached.cache_info().currsize == before
    assert app_mod._route_cached.cache_info().maxsize is not None


# -- the WSGI shortcut ---------------------------------------------------------------------

SHORTCUT_CASES = [
    ("/v1/models/half_plus_two:predict", b'{"instances": [[1.0], [2.0]]}'),
    ("/v1/models/half_plus_two/versions/123:predict", b'{"inputs": [[1.0]]}'),
    ("/v1/models/half_plus_two/labels/canary:predict", b'{"instances": [1.0, 2.0, 5.0]}'),
    ("/v1/models/half_plus_two:predict", b'{"instances": [["a"]]}'),          # 400 from the codec
    ("/v1/models/half_plus_two:predict", b"{not json"),                      # 400 from the parser
    ("/v1/models/nope:predict", b'{"instances": [[1.0]]}'),                  # 404
    ("/v1/models/half_plus_two:regress", b'{"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}'),
    ("/v1/models/half_plus_two:classify", b'{"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}'),
    ("/v1/models/half_plus_two:Predict", b'{"instances": [[1.0]]}'),          # malformed: exact verb only
    ("/v1/models/half_plus_two", b"{}"),                                     # POST to a status path
    ("/v2/models/half_plus_two:predict", b"{}"),                             # not TF Serving's: 404
    ("/v1/models/counter:predict", b'{"signature_name": "get_counter", "instances": []}'),
    ("/v1/models/h\u00e9:predict", b'{"instances": [[1.0]]}'),              # non-ASCII: Flask's route
]


@pytest.mark.parametrize("path,body", SHORTCUT_CASES)
def test_shortcut_answers_exactly_as_flask_routing(manager, path, body):
    # POSTs skip Flask's request machinery (ServingApp.wsgi_app); the answer must be the same bytes,
    # status line and headers as through Flask's own routing.
    api = RestAPI(DataPlane(manager))
    fast, routed = create_app(api).test_client(), create_app(api, shortcut=False).test_client()
    a, b = fast.post(path, data=body), routed.post(path, data=body)
    assert (a.status, a.headers.to_wsgi_list(), a.data) == (b.status, b.headers.to_wsgi_list(), b.data)
    assert a.content_type == "application/json" and a.status_code in (200, 400, 404), a.data


def test_shortcut_leaves_requests_without_a_length_to_flask(manager):
    # A chunked body has no Content-Length: Flask reads it, and the answer is still TF Serving's.
    app = create_app(RestAPI(DataPlane(manager)))
    seen = []
    app.before_request(lambda: seen.append("flask"))
    client = app.test_client()
    r = client.post("/v1/models/half_plus_two:predict", input_stream=io.BytesIO(b'{"instances": [[1.0]]}'),
                    headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert (r.status_code, json.loads(r.data), seen) == (200, {"predictions": [[2.5]]}, ["flask"])
    r = client.post("/v1/models/half_plus_two:predict", data=b'{"instances": [[1.0]]}')
    assert (r.status_code, seen) == (200, ["flask"])  # with a length: the shortcut, no Flask hook ran


# -- CORS (--rest_api_enable_cors_support) ---------------------------------------------------

CORS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "POST, GET"),
        ("Access-Control-Allow-Headers", "Content-Type")]


def cors_headers(response):
    return [(k, v) for k, v in response.headers.to_wsgi_list() if k.startswith("Access-Control-")]


@pytest.mark.parametrize("shortcut", [True, False])
def test_cors_headers_on_every_v1_answer(manager, shortcut):
    client = create_app(RestAPI(DataPlane(manager)), cors=True, shortcut=shortcut).test_client()
    ok = client.post("/v1/models/half_plus_two:predict", data=b'{"instances": [[1.0]]}')
    bad = client.post("/v1/models/nope:predict", data=b'{"instances": [[1.0]]}')
    status = client.get("/v1/models/half_plus_two")
    for r in (ok, bad, status):
        assert cors_headers(r) == CORS, (r.status, r.headers)
        assert r.content_type == "application/json"
    assert (ok.status_code, bad.status_code, status.status_code) == (200, 404, 200)


def test_no_cors_headers_without_the_flag(client):
    r = client.post("/v1/models/half_plus_two:predict", data=b'{"instances": [[1.0]]}')
    assert r.status_code == 200 and cors_headers(r) == []


def test_preflight_is_answered_as_tf_serving_does(manager, client):
    # TF Serving answers OPTIONS under /v1/ itself: 200 with no body when the request names an
    # http(s) Origin, else 400 FAILED_PRECONDITION, also with no body; CORS headers only with the flag.
    cors = create_app(RestAPI(DataPlane(manager)), cors=True).test_client()
    path = "/v1/models/half_plus_two:predict"
    r = cors.options(path, headers={"Origin": "http://127.0.0.1:8000",
                                    "Access-Control-Request-Method": "POST"})
    assert (r.status_code, r.data, cors_headers(r)) == (200, b"", CORS)
    assert "Content-Type" not in r.headers
    r = cors.options(path)
    assert (r.status_code, r.data, cors_headers(r)) == (400, b"", CORS)
    r = client.options(path, headers={"Origin": "https://example.org"})
    assert (r.status_code, r.data, cors_headers(r)) == (200, b"", [])
    assert client.options("/healthz").status_code == 404


@pytest.mark.parametrize("origin, status", [("http://localhost:8000", 200), ("https://a.example", 200),
                                            ("null", 400), ("", 400), ("localhost:8000", 400),
                                            # RE2::PartialMatch: the scheme may stand anywhere in the header
                                            (" http://localhost:8000", 200), ("x-https://y", 200)])
def test_preflight_origin_is_a_partial_match_with_or_without_the_flag(manager, client, origin, status):
    # http_server.cc answers OPTIONS before the CORS flag is looked at; the flag only adds the headers.
    cors = create_app(RestAPI(DataPlane(manager)), cors=True).test_client()
    headers = {"Origin": origin} if origin else {}
    for c, expected_headers in ((client, []), (cors, CORS)):
        r = c.options("/v1/models/half_plus_two:predict", headers=headers)
        assert (r.status_code, r.data, cors_headers(r)) == (status, b"", expected_headers), origin


# -- --rest_api_timeout_in_ms bounds the wait for a batch -------------------------------------

def test_rest_timeout_is_each_requests_time_limit_for_the_batcher(manager):
    seen = []
    batcher_for = recording_batcher_for(seen)
    for timeout_ms, expected in ((2500, 2.5), (0, None)):
        seen.clear()
        client = create_app(RestAPI(DataPlane(manager, batcher_for=batcher_for), timeout_ms=timeout_ms)).test_client()
        assert post(client, "/v1/models/half_plus_two:predict", {"instances": [[1.0]]})[0] == 200
        example = {"examples": [{"x": 20.0}]}
        assert post(client, "/v1/models/half_plus_two:classify", {"signature_name": "classify_x_to_y", **example}
                    )[0] == 200
        assert post(client, "/v1/models/half_plus_two:regress", {"signature_name": "regress_x_to_y", **example}
                    )[0] == 200
        assert seen == [expected] * 3


def test_a_rest_request_queued_behind_a_stuck_batch_answers_504(manager):
    gate, started, ran = threading.Event(), threading.Event(), []
    batchers = {}

    def batcher_for(servable, signature):
        def run(inputs):
            ran.append(np.asarray(inputs["x"]).ravel().tolist())
            if len(ran) == 1:
                started.set()
                gate.wait(30)
            return servable.run(signature, inputs)
        if signature.name not in batchers:
            batchers[signature.name] = Batcher(run, BatchingParameters(num_batch_threads=1, max_batch_size=4,
                                                                       batch_timeout_micros=0))
        return batchers[signature.name].submit

    plane = DataPlane(manager, batcher_for=batcher_for)
    patient = create_app(RestAPI(plane)).test_client()
    hurried = create_app(RestAPI(plane, timeout_ms=50)).test_client()
    answers = []
    first = threading.Thread(target=lambda: answers.append(
        post(patient, "/v1/models/half_plus_two:predict", {"instances": [[1.0]]})))
    first.start()
    try:
        assert started.wait(10)
        status, message = error(hurried, "POST", "/v1/models/half_plus_two:predict", b'{"instances": [[7.0]]}')
    finally:
        gate.set()
        first.join(10)
        for b in batchers.values():
            b.close()
    assert status == 504
    assert message == ("Run() timeout exceeded while waiting in batching queue (the request's time limit was "
                       "50 ms); it was not run")
    assert answers == [(200, {"predictions": [[2.5]]})]
    assert ran == [[1.0]]
