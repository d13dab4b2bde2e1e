"""--monitoring_config_file: the config file, the metrics through Flask's test client, and the page of
a real `python -m server --workers 2` over loopback, summed over both workers."""
import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client import CollectorRegistry

from server import config, monitoring
from server.config import ConfigError
from server.dataplane import DataPlane
from server.lifecycle import ModelManager
from server.rest.app import create_app
from server.rest.handlers import RestAPI
from server.servable import load_servable

from .serverproc import ROOT, ServerProcess

PAGE = "/monitoring/prometheus/metrics"


# -- the config file ----------------------------------------------------------------------------

def test_enabled_config_with_default_path():
    s = monitoring.parse_config("prometheus_config { enable: true }")
    assert s == monitoring.PrometheusSettings(enable=True, path=PAGE)


def test_enabled_config_with_own_path(tmp_path):
    f = tmp_path / "monitoring.config"
    f.write_text('prometheus_config {\n  enable: true,\n  path: "/metrics"\n}\n')
    assert monitoring.read_config_file(f) == monitoring.PrometheusSettings(enable=True, path="/metrics")


@pytest.mark.parametrize("text", ["", "prometheus_config { enable: false path: '/m' }", "prometheus_config {}"])
def test_disabled_configs(text):
    assert monitoring.parse_config(text).enable is False


@pytest.mark.parametrize("text,phrase", [
    ("prometheus_config { enable: true ", "Invalid protobuf file: 'm.config'"),
    ("prometheus_config { enabled: true }", 'has no field named "enabled"'),
    ("prometheus_config { enable: maybe }", "enable"),
    ("prometheus_config { enable: true path: 'metrics' }", "must start with '/'"),
])
def test_bad_configs_are_refused_clearly(text, phrase):
    with pytest.raises(ConfigError) as e:
        monitoring.parse_config(text, "m.config")
    assert phrase in e.value.message


def test_unreadable_config_file():
    with pytest.raises(ConfigError, match="Cannot read monitoring config file '/no/such/file'"):
        monitoring.read_config_file("/no/such/file")


def test_message_classes_mirror_tf_serving_proto():
    d = monitoring.MonitoringConfigProto.DESCRIPTOR
    assert d.full_name == "tensorflow.serving.MonitoringConfig"
    assert d.fields_by_name["prometheus_config"].number == 1
    p = monitoring.PrometheusConfigProto.DESCRIPTOR
    assert (p.fields_by_name["enable"].number, p.fields_by_name["path"].number) == (1, 2)


# -- the page format ----------------------------------------------------------------------------

def test_counters_keep_tf_serving_names_and_histograms_their_buckets():
    m = monitoring.Metrics(CollectorRegistry())
    m.record_request("m", "Predict", "OK", 0.002)
    page = m.render().decode()
    assert "# TYPE :tensorflow:serving:request_count counter\n" in page
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 1.0\n' in page
    assert "_total" not in page and "_created" not in page
    # 2 ms = 2000 us: below the bucket 10 * 1.8**9 = 1983.6 us, within 10 * 1.8**10 = 3570.5 us
    buckets = dict(re.findall(r':tensorflow:serving:request_latency_bucket\{.*le="([^"]+)"\} (\S+)', page))
    assert len(buckets) == 34 and buckets["+Inf"] == "1.0"
    assert float(buckets[repr(10 * 1.8 ** 10)]) == 1.0 and float(buckets[repr(10 * 1.8 ** 9)]) == 0.0
    assert m.sample(":tensorflow:serving:request_latency_sum",
                    {"model_name": "m", "API": "Predict", "entrypoint": "REST"}) == pytest.approx(2000.0)
    assert re.search(r"^:tensorflow:serving:request_latency_sum\{.*\} 2000\.0\d*$", page, re.M)


def test_label_values_are_escaped():
    m = monitoring.Metrics(CollectorRegistry())
    m.record_request('a"b\\c', "Predict", "OK", 0.0)
    assert r'model_name="a\"b\\c"' in m.render().decode()


def test_apps_do_not_share_metrics():
    a, b = monitoring.Metrics(), monitoring.Metrics()
    a.record_request("m", "Predict", "OK", 0.0)
    assert a.sample(":tensorflow:serving:request_count", {"model_name": "m"}) == 1
    assert b.sample(":tensorflow:serving:request_count", {"model_name": "m"}) is None


# -- through Flask's test client ---------------------------------------------------------------

@pytest.fixture(scope="module")
def manager(testdata):
    settings = config.single_model("half_plus_two", str(testdata / "saved_model_half_plus_two_cpu"))
    metrics = monitoring.Metrics(CollectorRegistry())
    loader = monitoring.timed_loader(metrics, load_servable)
    mgr = ModelManager(settings, file_system_poll_wait_seconds=0, loader=loader,
                       on_state=lambda n, v, s, e: metrics.on_state(n, v, s)).start()
    assert mgr.wait_until_settled(120)
    mgr.metrics = metrics
    yield mgr
    mgr.stop()


def test_requests_are_counted_by_model_and_status(manager):
    metrics = monitoring.Metrics(CollectorRegistry())
    client = create_app(RestAPI(DataPlane(manager)), metrics=metrics, metrics_path=PAGE).test_client()
    for _ in range(3):
        assert client.post("/v1/models/half_plus_two:predict", data=b'{"instances": [1.0]}').status_code == 200
    assert client.post("/v1/models/half_plus_two:predict", data=b"not json").status_code == 400
    assert client.post("/v1/models/nope:predict", data=b'{"instances": [1.0]}').status_code == 404
    assert client.get("/v1/models/half_plus_two").status_code == 200          # status calls are not counted
    r = client.get(PAGE)
    assert r.status_code == 200 and r.content_type.startswith("text/plain")
    page = r.data.decode()
    assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"} 3.0' in page
    assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="INVALID_ARGUMENT"} 1.0' in page
    assert ':tensorflow:serving:request_count{model_name="nope",status="NOT_FOUND"} 1.0' in page
    assert metrics.sample(":tensorflow:serving:request_latency_count",
                          {"model_name": "half_plus_two", "API": "Predict", "entrypoint": "REST"}) == 4
    assert sum(v for k, v in _counts(page).items() if k[0] == ":tensorflow:serving:request_count") == 5


def test_classify_and_regress_have_their_api_label(manager):
    metrics = monitoring.Metrics(CollectorRegistry())
    client = create_app(RestAPI(DataPlane(manager)), metrics=metrics, metrics_path=PAGE).test_client()
    client.post("/v1/models/half_plus_two:regress",
                json={"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]})
    client.post("/v1/models/half_plus_two:classify", json={"examples": [{"x": 1.0}]})
    for api in ("Regress", "Classify"):
        assert metrics.sample(":tensorflow:serving:request_latency_count",
                              {"model_name": "half_plus_two", "API": api}) == 1


def test_load_latency_and_available_versions(manager, testdata):
    path = str(testdata / "saved_model_half_plus_two_cpu" / "00000123")
    m = manager.metrics
    assert m.sample(":tensorflow:cc:saved_model:load_latency", {"model_path": path}) > 0
    assert m.sample(":tensorflow:cc:saved_model:load_attempt_count", {"model_path": path, "status": "success"}) == 1
    assert m.sample("tf_serving_flask_model_available_versions", {"model_name": "half_plus_two"}) == 1


def test_page_path_follows_the_config(manager):
    metrics = monitoring.Metrics(CollectorRegistry())
    client = create_app(RestAPI(DataPlane(manager)), metrics=metrics, metrics_path="/metrics").test_client()
    assert client.get("/metrics").status_code == 200
    r = client.get(PAGE)
    assert r.status_code == 404 and r.json == {"error": f"Not found: GET {PAGE}"}


def test_without_monitoring_the_path_is_an_unknown_path(manager):
    client = create_app(RestAPI(DataPlane(manager))).test_client()
    r = client.get(PAGE)
    assert r.status_code == 404 and r.content_type == "application/json"
    assert r.json == {"error": f"Not found: GET {PAGE}"}


def _counts(page: str) -> dict:
    out = {}
    for line in page.splitlines():
        m = re.fullmatch(r"([^{\s#]+)(\{.*\})? (\S+)", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


# -- a real server with two workers ------------------------------------------------------------

def run_cli(*flags):
    return subprocess.run([sys.executable, "-m", "server", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_bad_monitoring_file_exits_with_one_sentence(tmp_path, testdata):
    f = tmp_path / "m.config"
    f.write_text("prometheus_config { enable: true, pth: '/m' }")
    r = run_cli("--rest_api_port=8501", "--model_name=m",
                f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}", f"--monitoring_config_file={f}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"error: Invalid protobuf file: '{f}'" in r.stderr and '"pth"' in r.stderr


@pytest.mark.slow
def test_two_workers_add_up(testdata, tmp_path):
    f = tmp_path / "monitoring.config"
    f.write_text("prometheus_config { enable: true }")
    flags = ["--model_name=half_plus_two", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
             f"--monitoring_config_file={f}", "--workers=2", "--rest_api_num_threads=2"]
    with ServerProcess(flags) as server:
        server.wait_available("half_plus_two")
        folder = re.search(r"every worker's values in (\S+)\)", server.wait_log("Prometheus metrics on")).group(1)
        # wait_available saw one worker; the page (all workers) says when both have loaded the model.
        deadline = time.monotonic() + 120
        while _loads(requests.get(server.url + PAGE, timeout=10).text) < 2:
            assert time.monotonic() < deadline, "the second worker did not load the model"
            time.sleep(0.2)
        def files():
            return sorted(pathlib.Path(folder).glob("counter_*.db"))

        assert len(files()) == 2  # one file per worker

        def predict(_):
            r = requests.post(f"{server.url}/v1/models/half_plus_two:predict", data=b'{"instances": [1.0]}',
                              headers={"Connection": "close"}, timeout=10)  # a fresh connection each time
            assert r.json() == {"predictions": [2.5]}

        # Concurrent batches until both workers have taken some (an idle server may hand every
        # connection to the same worker), so that the page's count is a sum of two workers' counts.
        n = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            while n == 0 or not all(_ok_count(f) for f in files()):
                assert time.monotonic() < deadline, "one worker took every request"
                list(pool.map(predict, range(40)))
                n += 40
        requests.post(f"{server.url}/v1/models/nope:predict", data=b'{"instances": [1.0]}', timeout=10)
        with requests.Session() as s:
            pages = [s.get(server.url + PAGE, headers={"Connection": "close"}, timeout=10) for _ in range(6)]
        for page in pages:
            assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain")
            counts = _counts(page.text)
            assert counts[(":tensorflow:serving:request_count", '{model_name="half_plus_two",status="OK"}')] == n
            assert counts[(":tensorflow:serving:request_count", '{model_name="nope",status="NOT_FOUND"}')] == 1
            loads = [k for k in counts if k[0] == ":tensorflow:cc:saved_model:load_attempt_count"]
            assert [counts[k] for k in loads] == [2.0], loads  # one load per worker
        # Each worker's own file: both served some of the n requests (else the sum would prove nothing).
        per_worker = [_ok_count(f) for f in files()]
        assert len(per_worker) == 2 and all(per_worker) and sum(per_worker) == n, per_worker
        assert server.stop() == 0
    assert not pathlib.Path(folder).exists()  # the parent removed the folder at exit


def _loads(page: str) -> float:
    return sum(v for (name, labels), v in _counts(page).items()
               if name == ":tensorflow:cc:saved_model:load_attempt_count" and 'status="success"' in labels)


def _ok_count(db) -> float:
    from prometheus_client.mmap_dict import MmapedDict
    total = 0.0
    for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(db)):
        metric, sample, labels, _help = json.loads(key)
        if sample == ":tensorflow:serving:request_count_total" and labels.get("status") == "OK":
            total += value
    return total
