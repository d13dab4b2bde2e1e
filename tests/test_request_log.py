"""server/request_log.py: each model's logging_config, against real server processes and in-process."""
import pathlib
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

from server.config import ModelSettings, check_logging_config
from server.request_log import LogSettings, RequestLog, record_status

from .serverproc import ServerProcess

MODEL = "half_plus_two"


def config_text(base: pathlib.Path, prefix: pathlib.Path, rate: float = 1.0, kind: str = "tfrecord") -> str:
    return f"""model_config_list {{ config {{
  name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow"
  logging_config {{
    log_collector_config {{ type: "{kind}" filename_prefix: "{prefix}" }}
    sampling_config {{ sampling_rate: {rate} }}
  }}
}} }}"""


def read_records(folder: pathlib.Path) -> list[bytes]:
    return [r.numpy() for path in sorted(folder.glob("*.tfrecord")) for r in tf.data.TFRecordDataset(str(path))]


def example(x: float) -> dict:
    return {"x": x}


def test_every_api_logged_from_rest_and_grpc_and_flushed_on_sigterm(testdata, tmp_path):
    base = tmp_path / "model"
    base.mkdir()
    (base / "123").symlink_to(testdata / "saved_model_half_plus_two_cpu" / "00000123")
    logs = tmp_path / "logs"
    cfg = tmp_path / "models.config"
    cfg.write_text(config_text(base, logs / "hp2"))
    url = None
    with ServerProcess([f"--model_config_file={cfg}", "--workers=2"], grpc=True) as server:
        server.wait_available(MODEL)
        url = f"{server.url}/v1/models/{MODEL}"
        for i in range(20):
            r = requests.post(f"{url}:predict", json={"instances": [float(i)]}, timeout=10)
            assert r.status_code == 200, r.text
        r = requests.post(f"{url}:classify", json={"signature_name": "classify_x_to_y",
                                                  "examples": [example(1.0)]}, timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(f"{url}:regress", json={"signature_name": "regress_x_to_y",
                                                 "examples": [example(3.0)]}, timeout=10)
        assert r.status_code == 200, r.text
        bad = requests.post(f"{url}:predict", json={"instances": [[1.0, 2.0]], "signature_name": "nope"}, timeout=10)
        assert bad.status_code == 400
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([5.0], np.float32)))
            for _ in range(5):
                assert stub.Predict(request, timeout=10).outputs["y"].float_val == [4.5]
        # SIGTERM right away: what is still queued is written before the workers exit.
        assert server.stop() is not None
    records = read_records(logs)
    entries = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    kinds = [e.WhichOneof("log_type") for e in entries]
    assert kinds.count("predict_log") == 20 + 1 + 5
    assert kinds.count("classify_log") == 1 and kinds.count("regress_log") == 1
    assert len({p.name.split("-")[1] for p in logs.glob("hp2-*.tfrecord")}) >= 1   # pid in every name
    statuses = [record_status(r) for r in records]
    failed = [(e, s) for e, s in zip(entries, statuses) if s != "OK"]
    assert len(failed) == 1
    entry, status = failed[0]
    assert status == 'FAILED_PRECONDITION: Serving signature key "nope" not found.'
    assert not entry.predict_log.HasField("response")
    ok = [e for e, s in zip(entries, statuses) if s == "OK" and e.WhichOneof("log_type") == "predict_log"]
    xs = sorted(float(tf.make_ndarray(e.predict_log.request.inputs["x"]).reshape(-1)[0]) for e in ok)
    assert xs == sorted([float(i) for i in range(20)] + [5.0] * 5)
    for e in ok:
        x = tf.make_ndarray(e.predict_log.request.inputs["x"]).reshape(-1)[0]
        y = tf.make_ndarray(e.predict_log.response.outputs["y"]).reshape(-1)[0]
        assert y == pytest.approx(x / 2 + 2)
        assert e.log_metadata.model_spec.name == MODEL and e.log_metadata.model_spec.version.value == 123
        assert e.log_metadata.sampling_config.sampling_rate == 1.0
        assert list(e.log_metadata.saved_model_tags) == ["serve"]
    classify = next(e for e in entries if e.WhichOneof("log_type") == "classify_log")
    assert classify.classify_log.request.input.example_list.examples[0].features.feature["x"].float_list.value == [1.0]
    assert len(classify.classify_log.response.result.classifications) == 1
    regress = next(e for e in entries if e.WhichOneof("log_type") == "regress_log")
    assert regress.regress_log.response.result.regressions[0].value == pytest.approx(3.5)


def test_an_unregistered_collector_stops_the_server_as_tf_serving(testdata, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text(config_text(testdata / "saved_model_half_plus_two_cpu", tmp_path / "x", kind="bigquery"))
    with ServerProcess([f"--model_config_file={cfg}"]) as server:
        deadline = time.monotonic() + 60
        while server.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.proc.returncode == 255
        assert ("Failed to start server. Error: NOT_FOUND: Cannot find LogCollector::Factory for type: bigquery"
                in "\n".join(server.log_lines()))


def test_a_reread_config_turns_logging_on(testdata, tmp_path):
    base = testdata / "saved_model_half_plus_two_cpu"
    cfg = tmp_path / "models.config"
    cfg.write_text(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
                   'model_platform: "tensorflow" }}')
    logs = tmp_path / "logs"
    with ServerProcess([f"--model_config_file={cfg}", "--model_config_file_poll_wait_seconds=1"]) as server:
        server.wait_available(MODEL)
        url = f"{server.url}/v1/models/{MODEL}:predict"
        assert requests.post(url, json={"instances": [1.0]}, timeout=10).status_code == 200
        cfg.write_text(config_text(base, logs / "later", rate=1.0))
        server.wait_log("Model config applied", timeout=20)
        for x in (7.0, 8.0):
            assert requests.post(url, json={"instances": [x]}, timeout=10).status_code == 200
        server.stop()
    entries = [prediction_log_pb2.PredictionLog.FromString(r) for r in read_records(logs)]
    assert [tf.make_ndarray(e.predict_log.request.inputs["x"]).tolist() for e in entries] == [[7.0], [8.0]]


# -- in process: sampling, the bounded queue, rotation ------------------------------------------

def settings(tmp_path, rate=1.0) -> LogSettings:
    from tensorflow_serving.config import logging_config_pb2
    config = logging_config_pb2.LoggingConfig()
    config.log_collector_config.type = "tfrecord"
    config.log_collector_config.filename_prefix = str(tmp_path / "m")
    config.sampling_config.sampling_rate = rate
    return check_logging_config("m", config)


def model(tmp_path, rate=1.0) -> ModelSettings:
    return ModelSettings(name="m", base_path="/x", logging=settings(tmp_path, rate))


def submit(log: RequestLog, s: LogSettings, n: int) -> None:
    for i in range(n):
        log.submit("predict", s, "m", 1, "serving_default", {"x": np.full((1, 64), i, np.float32)},
                   {"y": np.zeros((1, 1), np.float32)})


def test_sampling_rate_is_honoured(tmp_path):
    log = RequestLog([model(tmp_path, rate=0.1)])
    sampled = sum(log.sample("m") is not None for _ in range(20000))
    assert 1600 < sampled < 2400     # 2000 expected; +-9 standard deviations
    assert log.sample("other") is None
    assert RequestLog([model(tmp_path, rate=0.0)]).sample("m") is None
    log.close()


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path):
    class Metrics:
        def __init__(self):
            self.dropped, self.logged = 0, []

        def record_log_dropped(self, name):
            self.dropped += 1

        def record_log(self, name, status):
            self.logged.append(status)
    metrics = Metrics()
    log = RequestLog([], metrics=metrics, queue_size=8)   # no model logs yet: the writer has not started
    started = time.perf_counter()
    submit(log, settings(tmp_path), 2000)
    assert time.perf_counter() - started < 5
    assert log.dropped == metrics.dropped == 2000 - 8
    log.update([model(tmp_path)])                          # the writer starts and writes the 8 queued
    assert log.flush()
    log.close()
    assert log.written == 8 and len(read_records(tmp_path)) == 8 and metrics.logged == ["OK"] * 8


def test_files_rotate_by_size_and_the_oldest_go(tmp_path):
    log = RequestLog([model(tmp_path)], file_bytes=4096, max_files=3)
    submit(log, settings(tmp_path), 60)
    log.close()
    files = sorted(tmp_path.glob("m-*.tfrecord"))
    assert len(files) == 3
    assert all(p.stat().st_size <= 4096 + 600 for p in files)
    assert log.written == 60 and 0 < len(read_records(tmp_path)) < 60


def test_a_record_that_cannot_be_written_is_counted_not_raised(tmp_path):
    log = RequestLog([model(tmp_path)])
    s = settings(tmp_path)
    log.submit("predict", s, "m", 1, "serving_default", {"x": object()}, None)   # not a tensor
    submit(log, s, 1)
    log.close()
    assert log.failed == 1 and log.written == 1


def test_a_bad_sampling_rate_or_prefix_is_refused(tmp_path):
    from tensorflow_serving.config import logging_config_pb2

    from server.registry import StartError
    config = logging_config_pb2.LoggingConfig()
    config.log_collector_config.type = "tfrecord"
    with pytest.raises(StartError, match="filename_prefix"):
        check_logging_config("m", config)
    config.log_collector_config.filename_prefix = "/tmp/x"
    config.sampling_config.sampling_rate = 1.5
    with pytest.raises(StartError, match="sampling_rate"):
        check_logging_config("m", config)
    assert record_status(b"") == "OK"   # an empty record is a PredictionLog without a status
