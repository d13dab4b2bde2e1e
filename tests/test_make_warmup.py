"""server/make_warmup.py: a warm-up file made from logged traffic, replayed by a newly published version;
and the multi_inference request logged as one record, as TF Serving logs it."""
import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from server import make_warmup
from server.request_log import record_status
from server.warmup import WARMUP_FILE

from .serverproc import ROOT, ServerProcess

MODEL = "counting"
CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


def export_counting_model(path):
    """A TF1 SavedModel that counts what it is fed: each signature adds the sum of its inputs to a variable of
    its own, and "totals" reads the three sums. A fresh version's totals are what its warm-up replayed."""
    graph = tf.Graph()
    v1 = tf.compat.v1
    with graph.as_default(), v1.Session(graph=graph) as sess:
        totals = {k: v1.Variable(0.0, name=f"total_{k}") for k in ("predict", "classify", "regress")}
        x = v1.placeholder(tf.float32, [None], name="x")
        with tf.control_dependencies([totals["predict"].assign_add(tf.reduce_sum(x))]):
            y = tf.identity(x * 2, name="y")
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        ex = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
        with tf.control_dependencies([totals["classify"].assign_add(tf.reduce_sum(ex))]):
            scores = tf.concat([ex, -ex], axis=1, name="scores")
        with tf.control_dependencies([totals["regress"].assign_add(tf.reduce_sum(ex))]):
            outputs = tf.identity(ex * 3, name="outputs")
        dummy = v1.placeholder(tf.float32, [None], name="dummy")
        read = {k: tf.identity(v.read_value(), name=f"read_{k}") for k, v in totals.items()}
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={
            "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y}),
            "classify": v1.saved_model.classification_signature_def(serialized, None, scores),
            "regress": v1.saved_model.regression_signature_def(serialized, outputs),
            "totals": v1.saved_model.predict_signature_def({"dummy": dummy}, read),
        })
        builder.save()


def example(x: float) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(
        feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}))


def config_text(base, prefix) -> str:
    return f"""model_config_list {{ config {{
  name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow"
  logging_config {{
    log_collector_config {{ type: "tfrecord" filename_prefix: "{prefix}" }}
    sampling_config {{ sampling_rate: 1.0 }}
  }}
}} }}"""


def read_totals(stub, version=None) -> dict:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "totals"
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["dummy"].CopyFrom(tf.make_tensor_proto(np.zeros([1], np.float32)))
    response = stub.Predict(request, timeout=30)
    assert response.model_spec.version.value == (version or response.model_spec.version.value)
    return {k: float(tf.make_ndarray(v)) for k, v in response.outputs.items()}


def send_traffic(url: str, stub) -> dict:
    """Mixed traffic over REST and gRPC, every x a power of two (so a sum tells which requests ran); two
    requests fail. Returns the sums of the requests that succeeded, by signature kind."""
    rest = f"{url}/v1/models/{MODEL}"
    for x in (1.0, 2.0, 4.0):
        assert requests.post(f"{rest}:predict", json={"instances": [x]}, timeout=30).status_code == 200
    for xs in ([8.0, 16.0], [32.0]):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(xs, np.float32)))
        assert list(stub.Predict(request, timeout=30).outputs["y"].float_val) == [2 * x for x in xs]
    for xs in ([64.0], [128.0, 256.0]):
        r = requests.post(f"{rest}:classify", json={"signature_name": "classify",
                                                   "examples": [{"x": x} for x in xs]}, timeout=30)
        assert r.status_code == 200, r.text
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = MODEL
    regress.model_spec.signature_name = "regress"
    regress.input.example_list.examples.append(example(512.0))
    assert stub.Regress(regress, timeout=30).result.regressions[0].value == 1536.0
    r = requests.post(f"{rest}:regress", json={"signature_name": "regress", "examples": [{"x": 1024.0}]}, timeout=30)
    assert r.status_code == 200, r.text
    multi = inference_pb2.MultiInferenceRequest()
    multi.input.example_list.examples.append(example(2048.0))
    for signature, method in (("classify", CLASSIFY), ("regress", REGRESS)):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name = MODEL
        task.model_spec.signature_name = signature
    results = stub.MultiInference(multi, timeout=30).results
    assert results[1].regression_result.regressions[0].value == 6144.0
    # Two failures: a signature that is not there, and classify on a predict signature.
    r = requests.post(f"{rest}:predict", json={"signature_name": "nope", "instances": [4096.0]}, timeout=30)
    assert r.status_code == 400
    regress.model_spec.signature_name = "serving_default"
    regress.input.example_list.examples[0].CopyFrom(example(8192.0))
    with pytest.raises(grpc.RpcError):
        stub.Regress(regress, timeout=30)
    return {"predict": 1 + 2 + 4 + 8 + 16 + 32, "classify": 64 + 128 + 256 + 2048, "regress": 512 + 1024 + 2048}


def kinds(entries) -> list[str]:
    return sorted(e.WhichOneof("log_type") for e in entries)


def read(path) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def run_command(*args) -> str:
    done = subprocess.run([sys.executable, "-m", "server.make_warmup", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_logged_traffic_becomes_a_warmup_file_that_a_new_version_replays(tmp_path):
    staged = tmp_path / "staged"
    export_counting_model(staged)
    base = tmp_path / "base"
    base.mkdir()
    shutil.copytree(staged, base / "1")
    logs = tmp_path / "logs"
    cfg = tmp_path / "models.config"
    cfg.write_text(config_text(base, logs / MODEL))

    # 1. Traffic, logged at sampling 1.0; the server stops (what is queued is written).
    with ServerProcess([f"--model_config_file={cfg}"], grpc=True) as server:
        server.wait_available(MODEL)
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            sums = send_traffic(server.url, stub)
            assert read_totals(stub) == sums                  # the model counts what it is fed
        server.stop()
        # 10 requests and the read of the totals succeeded, 2 failed: 13 records.
        assert "Request log closed: 13 record(s) written, 0 dropped, 0 failed" in "\n".join(server.log_lines())
    records = [r for p in sorted(logs.glob("*.tfrecord")) for r in read(p)]
    entries = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    assert len(entries) == 13
    # The multi_inference request is one record with both tasks and both results, as TF Serving logs it.
    assert kinds(entries) == sorted(["predict_log"] * 7 + ["classify_log"] * 2 + ["regress_log"] * 3
                                    + ["multi_inference_log"])
    (multi,) = [e.multi_inference_log for e in entries if e.HasField("multi_inference_log")]
    assert [(t.method_name, t.model_spec.signature_name, t.model_spec.version.value) for t in multi.request.tasks] \
        == [(CLASSIFY, "classify", 1), (REGRESS, "regress", 1)]
    assert multi.request.input.example_list.examples[0] == example(2048.0)
    assert multi.response.results[0].classification_result.classifications[0].classes[0].score == 2048.0
    assert multi.response.results[1].regression_result.regressions[0].value == 6144.0
    assert sorted(record_status(r).split(":")[0] for r in records if record_status(r) != "OK") \
        == ["FAILED_PRECONDITION", "INVALID_ARGUMENT"]

    # 2. The command: every request that succeeded (fewer than the default 100), requests only.
    version_2 = tmp_path / "version_2"
    shutil.copytree(staged, version_2)
    out = run_command("--version_dir", version_2, logs / MODEL)
    assert "Read 13 record(s) from 1 file(s): 11 usable, 2 failed request(s)" in out
    warmup = [prediction_log_pb2.PredictionLog.FromString(r) for r in read(version_2 / WARMUP_FILE)]
    assert kinds(warmup) == sorted(["predict_log"] * 6 + ["classify_log"] * 2 + ["regress_log"] * 2
                                   + ["multi_inference_log"])
    assert not any(getattr(e, e.WhichOneof("log_type")).HasField("response") for e in warmup)

    # A smaller file takes one of each API and signature first.
    five = tmp_path / "five"
    run_command("--output", five, "--num_records", 5, "--model_name", MODEL, logs)
    assert sorted(make_warmup.group_of(prediction_log_pb2.PredictionLog.FromString(r)) for r in read(five)) \
        == sorted([("predict_log", "serving_default"), ("predict_log", "totals"), ("classify_log", "classify"),
                   ("regress_log", "regress"), ("multi_inference_log", ((CLASSIFY, "classify"), (REGRESS, "regress")))])

    # 3. Published as version 2 of a serving model: it replays those requests before it is served.
    cfg.write_text(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
                   'model_platform: "tensorflow" }}')
    with ServerProcess([f"--model_config_file={cfg}", "--file_system_poll_wait_seconds=1"], grpc=True) as server:
        server.wait_available(MODEL, "1")
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert read_totals(stub, version=1) == dict.fromkeys(sums, 0.0)   # a fresh version counts from 0
        version_2.rename(base / "2")
        server.wait_available(MODEL, "2")
        line = server.wait_log("Number of warmup records read")
        assert line.endswith(f"{base / '2' / WARMUP_FILE}. Number of warmup records read: 11."), line
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert read_totals(stub, version=2) == sums       # exactly the logged requests that succeeded


# -- in process: the choice of records -----------------------------------------------------------

def predict_entry(signature: str, x: float):
    entry = prediction_log_pb2.PredictionLog()
    request = entry.predict_log.request
    request.model_spec.name = "m"
    request.model_spec.version.value = 7
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([x], np.float32)))
    return entry


def test_choose_spreads_over_signatures_evenly_and_the_same_way_every_time():
    entries = [predict_entry("a", i) for i in range(10)] + [predict_entry("b", 100 + i) for i in range(3)]
    entries.insert(5, predict_entry("c", 200))
    chosen = make_warmup.choose(entries, 6)
    assert chosen == make_warmup.choose(entries, 6)
    picked = [float(tf.make_ndarray(entries[i].predict_log.request.inputs["x"])[0]) for i in chosen]
    # a gets 3 turns (of 10: the 1st, 4th and 7th), b 2 (of 3), c its one; in the logs' order
    assert picked == [0.0, 3.0, 200.0, 6.0, 100.0, 101.0]
    assert len(make_warmup.choose(entries, 1000)) == len(entries)


def test_only_succeeded_requests_of_one_model_without_versions(tmp_path):
    from server.request_log import _status_field
    logs = tmp_path / "x-1-00000.tfrecord"
    other = predict_entry("a", 5)
    other.predict_log.request.model_spec.name = "other"
    with tf.io.TFRecordWriter(str(logs)) as w:
        w.write(predict_entry("a", 1).SerializeToString())
        w.write(predict_entry("a", 2).SerializeToString() + _status_field("INVALID_ARGUMENT: no"))
        w.write(other.SerializeToString())
        w.write(prediction_log_pb2.PredictionLog(session_run_log={}).SerializeToString())
    with pytest.raises(SystemExit, match="2 models"):
        make_warmup.make_warmup([str(tmp_path / "x")], str(tmp_path / "out"))
    assert make_warmup.make_warmup([str(tmp_path / "x")], str(tmp_path / "out"), model_name="m") == 1
    (entry,) = [prediction_log_pb2.PredictionLog.FromString(r) for r in read(tmp_path / "out")]
    assert entry.predict_log.request.model_spec.name == "m"
    assert not entry.predict_log.request.model_spec.HasField("version")
    with pytest.raises(SystemExit, match="at most|between 1 and 1000"):
        make_warmup.make_warmup([str(logs)], str(tmp_path / "out"), num_records=1001, model_name="m")
    with pytest.raises(SystemExit, match="no request log files"):
        make_warmup.make_warmup([str(tmp_path / "none")], str(tmp_path / "out"))


def test_its_constants_are_warmups():
    """make_warmup writes warmup.py's two constants again (its --help must not load TensorFlow)."""
    from server import warmup
    assert (make_warmup.MAX_RECORDS, make_warmup.WARMUP_FILE) == (warmup.MAX_RECORDS, warmup.WARMUP_FILE)
