"""server/warmup.py: assets.extra/tf_serving_warmup_requests is replayed before a version is AVAILABLE."""
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from server.config import ModelSettings
from server.errors import ServingError
from server.lifecycle import ModelManager
from server.servable import load_servable
from server.warmup import MAX_RECORDS, WARMUP_FILE, run_warmup


class Recorder:
    """Wraps a servable and records every run (signature name, inputs, outputs)."""

    def __init__(self, servable):
        self._servable = servable
        self.path, self.signatures, self.get_signature = servable.path, servable.signatures, servable.get_signature
        self.name, self.version = servable.name, servable.version
        self.runs = []

    def run(self, signature, inputs):
        outputs = self._servable.run(signature, inputs)
        self.runs.append((signature.name, inputs, outputs))
        return outputs

    def unload(self):
        self._servable.unload()


def write_warmup(version_dir, logs):
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as w:
        for entry in logs:
            w.write(entry.SerializeToString())


def predict_log(signature="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    if signature:
        request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def example(x):
    return tf.train.Example(features=tf.train.Features(
        feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}))


@pytest.fixture
def version_dir(tmp_path, testdata):
    dst = tmp_path / "m" / "1"
    shutil.copytree(testdata / "saved_model_half_plus_two_2_versions" / "00000123", dst)
    return dst


def test_no_warmup_file_is_fine(version_dir):
    s = Recorder(load_servable("m", 1, str(version_dir)))
    assert run_warmup(s) == 0 and s.runs == []


def test_predict_records_are_replayed_num_request_iterations_times(version_dir):
    write_warmup(version_dir, [predict_log(x=np.array([[1.0], [2.0]], np.float32)),
                               predict_log("serving_default", x=np.array([[6.0]], np.float32))])
    s = Recorder(load_servable("m", 1, str(version_dir)))
    assert run_warmup(s, num_request_iterations=3) == 2
    assert len(s.runs) == 6
    assert [r[0] for r in s.runs] == ["serving_default"] * 6
    assert s.runs[0][2]["y"].ravel().tolist() == [2.5, 3.0]
    assert s.runs[5][2]["y"].ravel().tolist() == [5.0]


def test_records_run_through_the_versions_batchers(version_dir):
    # With batching on, warm-up goes through the batcher the version's requests will use (as TF Serving's
    # batching session is warmed up), and the answers are the same.
    from server.batching import BatcherPool
    write_warmup(version_dir, [predict_log(x=np.array([[1.0], [2.0]], np.float32))])
    s = Recorder(load_servable("m", 1, str(version_dir)))
    pool = BatcherPool()
    asked = []

    def batcher_for(servable, signature):
        asked.append((servable, signature.name))
        return pool.batcher_for(servable, signature)

    try:
        assert run_warmup(s, num_request_iterations=2, batcher_for=batcher_for) == 1
    finally:
        pool.close()
    assert asked == [(s, "serving_default")]
    assert [r[0] for r in s.runs] == ["serving_default"] * 2       # the batcher ran the servable
    assert s.runs[1][2]["y"].ravel().tolist() == [2.5, 3.0]


def test_classify_and_regress_records_feed_serialized_examples(version_dir):
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.signature_name = "regress_x_to_y"
    regress.input.example_list.examples.append(example(80.0))
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.signature_name = "classify_x_to_y"
    ctx = classify.input.example_list_with_context
    ctx.context.CopyFrom(example(20.0))          # the context supplies x
    ctx.examples.append(tf.train.Example())
    write_warmup(version_dir, [
        prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=regress)),
        prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=classify)),
    ])
    s = Recorder(load_servable("m", 1, str(version_dir)))
    assert run_warmup(s) == 2
    (r_name, r_in, r_out), (c_name, c_in, c_out) = s.runs
    assert r_name == "regress_x_to_y" and r_in["inputs"].dtype == object
    assert r_out["outputs"].ravel().tolist() == [42.0]
    assert c_name == "classify_x_to_y" and c_out["scores"].ravel().tolist() == [12.0]


@pytest.mark.parametrize("logs, code, message", [
    ([predict_log("nope", x=np.array([[1.0]], np.float32))], "FAILED_PRECONDITION",
     'Serving signature key "nope" not found.'),
    ([predict_log(z=np.array([[1.0]], np.float32))], "INVALID_ARGUMENT", "does not have named input: z"),
    ([prediction_log_pb2.PredictionLog()], "UNIMPLEMENTED", "Unsupported log_type for warmup"),
])
def test_bad_records_fail(version_dir, logs, code, message):
    write_warmup(version_dir, logs)
    with pytest.raises(ServingError) as e:
        run_warmup(load_servable("m", 1, str(version_dir)))
    assert e.value.code == code and message in e.value.message


def test_not_a_tfrecord_file(version_dir):
    (version_dir / "assets.extra").mkdir()
    (version_dir / WARMUP_FILE).write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(ServingError) as e:
        run_warmup(load_servable("m", 1, str(version_dir)))
    assert e.value.code == "DATA_LOSS"
    assert "Please verify your warmup data is in TFRecord format" in e.value.message


def test_too_many_records(version_dir):
    write_warmup(version_dir, [predict_log(x=np.array([[1.0]], np.float32))] * (MAX_RECORDS + 1))
    s = Recorder(load_servable("m", 1, str(version_dir)))
    with pytest.raises(ServingError, match=r"Number of warmup records exceeds the maximum \(1000\)"):
        run_warmup(s)
    assert len(s.runs) == MAX_RECORDS


def test_manager_warms_up_before_available(tmp_path, testdata):
    """The counter model counts its warm-up: incr_counter_by runs before the version is served."""
    base = tmp_path / "counter"
    shutil.copytree(testdata / "saved_model_counter" / "00000123", base / "1")
    write_warmup(base / "1", [predict_log("incr_counter_by", delta=np.float32(2.5)),
                              predict_log("incr_counter")])
    m = ModelManager([ModelSettings("counter", str(base))], file_system_poll_wait_seconds=0)
    m.start()
    try:
        assert m.wait_until_settled(60)
        with m.acquire("counter") as s:
            assert float(s.run(s.signatures["get_counter"], {})["output"]) == 3.5
    finally:
        m.stop()


def test_failed_warmup_fails_the_load_and_keeps_the_old_version(tmp_path, testdata):
    src = testdata / "saved_model_half_plus_two_2_versions"
    base = tmp_path / "m"
    shutil.copytree(src / "00000123", base / "1")
    m = ModelManager([ModelSettings("m", str(base))], file_system_poll_wait_seconds=0.05)
    m.start()
    try:
        assert m.wait_until_settled(60)
        staged = tmp_path / "staged"
        shutil.copytree(src / "00000124", staged)
        write_warmup(staged, [predict_log("nope", x=np.array([[1.0]], np.float32))])
        staged.rename(base / "2")
        assert m.wait_until_settled(60)
        assert m.available_versions("m") == [1]
        (bad,) = m.status("m", version=2).model_version_status
        assert bad.status.error_code == 9      # FAILED_PRECONDITION
        assert 'Serving signature key "nope" not found.' in bad.status.error_message
    finally:
        m.stop()


def multi_log(*tasks, name="m"):
    from tensorflow_serving.apis import inference_pb2
    request = inference_pb2.MultiInferenceRequest()
    request.input.example_list.examples.append(example(20.0))
    for signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = name
        task.model_spec.signature_name = signature
    return prediction_log_pb2.PredictionLog(multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=request))


def test_multi_inference_records_run_each_task(version_dir):
    write_warmup(version_dir, [multi_log(("classify_x_to_y", "tensorflow/serving/classify"),
                                         ("regress_x_to_y", "tensorflow/serving/regress"))])
    s = Recorder(load_servable("m", 1, str(version_dir)))
    assert run_warmup(s) == 1
    assert [(r[0], r[2][k].ravel().tolist()) for r, k in zip(s.runs, ("scores", "outputs"))] == [
        ("classify_x_to_y", [12.0]), ("regress_x_to_y", [12.0])]


@pytest.mark.parametrize("log, code, message", [
    (multi_log(("regress_x_to_y", "tensorflow/serving/regress"), name=""), "INVALID_ARGUMENT",
     "Found ModelSpec with an empty model name."),
    (multi_log(("regress_x_to_y", "tensorflow/serving/regress"), ("regress_x_to_y", "tensorflow/serving/regress")),
     "INVALID_ARGUMENT", "Duplicate evaluation of signature: regress_x_to_y"),
    (multi_log(("nope", "tensorflow/serving/regress")), "INVALID_ARGUMENT",
     "Requested signature not found in model graph: nope"),
    (multi_log(("regress_x_to_y", "tensorflow/serving/predict")), "UNIMPLEMENTED",
     "Unsupported signature method_name: tensorflow/serving/predict"),
])
def test_bad_multi_inference_records_fail_as_tf_serving(version_dir, log, code, message):
    write_warmup(version_dir, [log])
    with pytest.raises(ServingError) as e:
        run_warmup(load_servable("m", 1, str(version_dir)))
    assert (e.value.code, e.value.message) == (code, message)
