"""server/dataplane.py: the core REST and gRPC share, on TF Serving's own test models.

Inputs here are numpy arrays, as a gRPC front end hands them over; the REST codec's conversions are
tested in test_rest_*.py and the two transports end to end elsewhere.
"""
import threading

import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.config import model_server_config_pb2

from server import config
from server.batching.parameters import BatchingParameters
from server.batching.scheduler import Batcher
from server.dataplane import DataPlane, ModelSpec
from server.errors import ServingError
from server.lifecycle import ModelManager
from server.signatures import check_method_name

from .conftest import recording_batcher_for, settled_manager

CONFIG = """
model_config_list {
  config {
    name: "half_plus_two"
    base_path: "%(td)s/saved_model_half_plus_two_2_versions"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
  }
  config { name: "counter" base_path: "%(td)s/saved_model_counter" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="module")
def manager(testdata, tmp_path_factory):
    with settled_manager(CONFIG % {"td": testdata}, tmp_path_factory.mktemp("cfg")) as mgr:
        yield mgr


@pytest.fixture(scope="module")
def plane(manager):
    return DataPlane(manager)


def error(fn, *args, **kwargs) -> ServingError:
    with pytest.raises(ServingError) as e:
        fn(*args, **kwargs)
    return e.value


X = {"x": np.array([[1.0], [2.0]], np.float32)}


def test_predict_says_who_answered(plane):
    result = plane.predict(ModelSpec("half_plus_two"), X)
    assert (result.name, result.version, result.signature_name) == ("half_plus_two", 124, "serving_default")
    assert result.method_name == "tensorflow/serving/predict"
    np.testing.assert_array_equal(result.outputs["y"], [[2.5], [3.0]])
    assert plane.predict(ModelSpec("half_plus_two", version=123), X).version == 123
    assert plane.predict(ModelSpec("half_plus_two", label="stable"), X).version == 123


def test_predict_decodes_once_the_signature_is_known(plane):
    seen = []

    def decode(signature):
        seen.append((signature.name, list(signature.inputs)))
        return {"inputs": X["x"]}

    result = plane.predict(ModelSpec("half_plus_two", signature_name="regress_x2_to_y3"), decode)
    assert seen == [("regress_x2_to_y3", ["inputs"])]
    assert result.signature_name == "regress_x2_to_y3"


def test_inputs_are_validated_in_the_core(plane):
    e = error(plane.predict, ModelSpec("half_plus_two"), {"x": np.array([["a"]], object)})
    assert e.code == "INVALID_ARGUMENT" and "Input 'x'" in e.message and "is not of expected type: float" in e.message
    e = error(plane.predict, ModelSpec("half_plus_two"), {"x": X["x"], "z": X["x"]})
    assert e.message.startswith("input size does not match signature: 2!=1")


def test_output_filter(plane):
    spec = ModelSpec("half_plus_two", signature_name="serving_default")
    assert list(plane.predict(spec, X, output_filter=["y"]).outputs) == ["y"]
    e = error(plane.predict, spec, X, output_filter=["nope"])
    assert (e.code, e.message) == ("INVALID_ARGUMENT", "output tensor alias not found in signature: nope "
                                                       "Outputs expected to be in the set {y}.")
    e = error(plane.predict, spec, X, output_filter=["y", "y"])
    assert e.message == "duplicate output tensor alias: y"


def test_unknown_model_version_label_and_signature(plane):
    assert error(plane.predict, ModelSpec("nope"), X).code == "NOT_FOUND"
    assert error(plane.predict, ModelSpec("half_plus_two", version=7), X).code == "NOT_FOUND"
    assert error(plane.predict, ModelSpec("half_plus_two", label="nope"), X).code == "INVALID_ARGUMENT"
    e = error(plane.predict, ModelSpec("half_plus_two", signature_name="nope"), X)
    # The core says it as TF Serving's predict_util.cc (gRPC); REST rewords it (test_rest_app.py).
    assert (e.code, e.message) == ("FAILED_PRECONDITION", 'Serving signature key "nope" not found.')


def _example(x: float) -> bytes:
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(x)
    return example.SerializeToString()


def test_classify_and_regress_take_serialized_examples(plane):
    # The fixture README's known answers: regress x=80 -> 42, classify x=20 -> score 12.
    result = plane.regress(ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(80.0)])
    assert (result.version, result.signature_name) == (124, "regress_x_to_y")
    np.testing.assert_array_equal(result.outputs["outputs"].reshape(-1), [42.0])
    result = plane.classify(ModelSpec("half_plus_two", signature_name="classify_x_to_y"), [_example(20.0)])
    np.testing.assert_array_equal(result.outputs["scores"], [[12.0]])
    e = error(plane.classify, ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)])
    assert e.code == "INVALID_ARGUMENT" and 'at least one of "classes" or "scores"' in e.message
    e = error(plane.regress, ModelSpec("half_plus_two", signature_name="nope"), [_example(1.0)])
    assert e.message == "No signature was found with the name: nope"


def test_status_and_metadata_are_protos(plane):
    status = plane.model_status(ModelSpec("half_plus_two"))
    assert [v.version for v in status.model_version_status] == [124, 123]
    metadata = plane.model_metadata(ModelSpec("half_plus_two", version=123))
    assert (metadata.model_spec.name, metadata.model_spec.version.value) == ("half_plus_two", 123)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signature_defs)
    assert "classify_x_to_y" in signature_defs.signature_def
    assert error(plane.model_status, ModelSpec("")).message == "Missing model name in request."
    assert error(plane.model_metadata, ModelSpec("")).message == "Missing model name in request."


def test_the_batcher_runs_predict_and_examples(manager):
    calls = []

    def batcher_for(servable, signature):
        def run(inputs):
            calls.append(signature.name)
            return servable.run(signature, inputs)
        return run

    plane = DataPlane(manager, batcher_for=batcher_for)
    plane.predict(ModelSpec("half_plus_two"), X, output_filter=["y"])
    plane.regress(ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)])
    assert calls == ["serving_default", "regress_x_to_y"]


def test_the_time_limit_reaches_the_batcher_the_earlier_of_the_request_and_the_queue_bound(manager):
    seen = []
    batcher_for = recording_batcher_for(seen)
    plane = DataPlane(manager, batcher_for=batcher_for)
    plane.predict(ModelSpec("half_plus_two"), X)
    plane.predict(ModelSpec("half_plus_two"), X, timeout_s=2.5)
    plane.classify(ModelSpec("half_plus_two", signature_name="classify_x_to_y"), [_example(1.0)], timeout_s=3.0)
    plane.regress(ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)], timeout_s=4.0)
    bounded = DataPlane(manager, batcher_for=batcher_for, queue_timeout_s=1.0)
    bounded.predict(ModelSpec("half_plus_two"), X)
    bounded.predict(ModelSpec("half_plus_two"), X, timeout_s=0.5)
    bounded.predict(ModelSpec("half_plus_two"), X, timeout_s=2.0)
    assert seen == [None, 2.5, 3.0, 4.0, 1.0, 0.5, 1.0]


def test_without_batching_a_time_limit_changes_nothing(plane):
    # No batcher: nothing waits in a queue, so even a limit already spent lets the model run as before.
    result = plane.predict(ModelSpec("half_plus_two"), X, timeout_s=1e-9)
    np.testing.assert_allclose(result.outputs["y"], [[2.5], [3.0]])
    assert plane.regress(ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)],
                         timeout_s=1e-9).outputs["outputs"].tolist() == [[2.5]]


def test_a_request_queued_behind_a_stuck_batch_times_out_through_the_core(manager):
    gate, started, ran = threading.Event(), threading.Event(), []

    def stuck_once(servable, signature):
        def run(inputs):
            ran.append(inputs["x"][:, 0].tolist())
            if len(ran) == 1:
                started.set()
                gate.wait(30)
            return servable.run(signature, inputs)
        return run

    batchers = {}

    def batcher_for(servable, signature):
        if signature.name not in batchers:
            batchers[signature.name] = Batcher(stuck_once(servable, signature),
                                               BatchingParameters(num_batch_threads=1, max_batch_size=4,
                                                                  batch_timeout_micros=0))
        return batchers[signature.name].submit

    plane = DataPlane(manager, batcher_for=batcher_for)
    first = threading.Thread(target=plane.predict,
                             args=(ModelSpec("half_plus_two"), {"x": np.ones((1, 1), np.float32)}))
    first.start()
    try:
        assert started.wait(10)
        e = error(plane.predict, ModelSpec("half_plus_two"), {"x": np.full((1, 1), 7.0, np.float32)}, timeout_s=0.05)
        assert (e.code, e.http_status) == ("DEADLINE_EXCEEDED", 504)
        assert e.message.startswith("Run() timeout exceeded while waiting in batching queue")
    finally:
        gate.set()
        first.join(10)
        for b in batchers.values():
            b.close()
    assert ran == [[1.0]]


def test_method_name_check_with_the_flag(manager):
    plane = DataPlane(manager, check_method_name=check_method_name)
    e = error(plane.classify, ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)])
    assert (e.code, e.message) == ("INVALID_ARGUMENT", "Expected classification signature method_name to be "
                                                       "tensorflow/serving/classify. Was: tensorflow/serving/regress")
    assert plane.regress(ModelSpec("half_plus_two", signature_name="regress_x_to_y"), [_example(1.0)]).version == 124


def test_method_name_check_is_called_with_the_api(manager):
    checked = []
    plane = DataPlane(manager, check_method_name=lambda signature, method: checked.append((signature.name, method)))
    plane.predict(ModelSpec("half_plus_two"), X)
    plane.classify(ModelSpec("half_plus_two", signature_name="classify_x_to_y"), [_example(1.0)])
    assert checked == [("serving_default", "tensorflow/serving/predict"),
                       ("classify_x_to_y", "tensorflow/serving/classify")]


def test_reload_config_adds_and_removes_models(testdata, tmp_path):
    first = config.single_model("a", str(testdata / "saved_model_half_plus_two_cpu"))
    mgr = ModelManager(first, file_system_poll_wait_seconds=0).start()
    try:
        assert mgr.wait_until_settled(120)
        plane = DataPlane(mgr)
        new = model_server_config_pb2.ModelServerConfig()
        model = new.model_config_list.config.add(name="b", base_path=str(testdata / "saved_model_half_plus_two_cpu"),
                                                 model_platform="tensorflow")
        assert model.name == "b"
        plane.reload_config(new)
        assert mgr.wait_until_settled(120)
        assert plane.predict(ModelSpec("b"), X).name == "b"
        assert error(plane.predict, ModelSpec("a"), X).code == "NOT_FOUND"
        bad = model_server_config_pb2.ModelServerConfig()
        bad.model_config_list.config.add(name="c", base_path=str(tmp_path / "missing"), model_platform="tensorflow")
        assert error(plane.reload_config, bad).code in ("INVALID_ARGUMENT", "NOT_FOUND")
        assert plane.predict(ModelSpec("b"), X).name == "b"  # a refused config changes nothing
    finally:
        mgr.stop()
