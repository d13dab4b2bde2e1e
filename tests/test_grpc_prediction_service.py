"""tensorflow.serving.PredictionService through the official stubs against a real server process.

Known answers are TF Serving's own (the fixtures' README): half_plus_two y = 0.5 x + 2, regress
regress_x_to_y with x = 80 -> 42, classify classify_x_to_y with x = 20 -> ("", 12).
"""
import json
import sys

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    regression_pb2,
)

from .conftest import SAVEDMODEL

pytestmark = pytest.mark.slow


def predict_request(model, inputs, signature="", version=None, label=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if isinstance(value, type(request.inputs[key]))
                                     else tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def example(**features) -> example_pb2.Example:
    ex = example_pb2.Example()
    for name, value in features.items():
        ex.features.feature[name].CopyFrom(feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[value])))
    return ex


def examples_input(*examples, context=None) -> input_pb2.Input:
    inp = input_pb2.Input()
    if context is None:
        inp.example_list.examples.extend(examples)
    else:
        inp.example_list_with_context.examples.extend(examples)
        inp.example_list_with_context.context.CopyFrom(context)
    return inp


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value


# ---------------------------------------------------------------------------------------------
# Predict
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,version", [("hp2", 124), ("hp2cpu", 123), ("hp2tf2", 123)])
def test_predict_half_plus_two(grpc_served, model, version):
    x = np.array([[1.0], [2.0], [5.0]], np.float32) if model != "hp2tf2" else np.array([2.0], np.float32)
    response = grpc_served.predict.Predict(predict_request(model, {"x": x}), timeout=30)
    assert response.model_spec.name == model
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs) == ["y"]
    y = tf.make_ndarray(response.outputs["y"])
    np.testing.assert_array_equal(y, x * 0.5 + 2)
    assert y.dtype == np.float32
    assert response.outputs["y"].float_val  # typed fields, as TF Serving writes outputs by default


def test_predict_accepts_tensor_content_and_typed_fields_alike(grpc_served):
    x = np.array([[3.0], [4.0]], np.float32)
    typed = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[3.0, 4.0])
    typed.tensor_shape.dim.add().size = 2
    typed.tensor_shape.dim.add().size = 1
    content = tf.make_tensor_proto(x)
    assert content.tensor_content
    for proto in (typed, content):
        response = grpc_served.predict.Predict(predict_request("hp2", {"x": proto}), timeout=30)
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[3.5], [4.0]])


@pytest.mark.parametrize("spec,version", [({"version": 123}, 123), ({"version": 124}, 124),
                                          ({"label": "stable"}, 123), ({"label": "canary"}, 124)])
def test_predict_version_and_label(grpc_served, spec, version):
    response = grpc_served.predict.Predict(predict_request("hp2", {"x": [[1.0]]}, **spec), timeout=30)
    assert response.model_spec.version.value == version
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[2.5]])


def test_predict_output_filter(grpc_served):
    x = np.array([1.0, 3.0], np.float32)
    both = grpc_served.predict.Predict(predict_request("two", {"x": x}), timeout=30)
    assert sorted(both.outputs) == ["double", "square"]
    only = grpc_served.predict.Predict(predict_request("two", {"x": x}, output_filter=["square"]), timeout=30)
    assert list(only.outputs) == ["square"]
    np.testing.assert_array_equal(tf.make_ndarray(only.outputs["square"]), [1.0, 9.0])


def test_predict_stateful_counter(grpc_served):
    call = grpc_served.predict.Predict
    call(predict_request("counter", {}, signature="reset_counter"), timeout=30)
    for want in (1.0, 2.0):
        response = call(predict_request("counter", {}, signature="incr_counter"), timeout=30)
        assert tf.make_ndarray(response.outputs["output"]) == want
    response = call(predict_request("counter", {"delta": np.float32(3)}, signature="incr_counter_by"), timeout=30)
    assert tf.make_ndarray(response.outputs["output"]) == 5.0
    response = call(predict_request("counter", {}, signature="get_counter"), timeout=30)
    assert tf.make_ndarray(response.outputs["output"]) == 5.0
    assert response.model_spec.signature_name == "get_counter"


def test_predict_mnist_equals_rest(grpc_served):
    sys.path.insert(0, str(SAVEDMODEL))
    from mnist_loader import MNISTLoader
    images = MNISTLoader().test_data[:10]
    response = grpc_served.predict.Predict(predict_request("MLP", {"inputs": images}, signature="call"), timeout=30)
    grpc_answer = tf.make_ndarray(response.outputs["output_0"])
    rest = requests.post(f"{grpc_served.url}/v1/models/MLP:predict",
                         data=json.dumps({"signature_name": "call", "instances": images.tolist()}), timeout=30)
    assert rest.status_code == 200
    rest_answer = np.array(rest.json()["predictions"], np.float32)
    assert grpc_answer.shape == rest_answer.shape == (10, 10)
    np.testing.assert_array_equal(grpc_answer, rest_answer)
    assert response.model_spec.name == "MLP" and response.model_spec.signature_name == "call"


@pytest.mark.parametrize("model", ["hp2", "hp2cpu"])
def test_predict_half_plus_two_equals_rest(grpc_served, model):
    x = [[1.0], [2.0], [1e-7], [-3.25]]
    response = grpc_served.predict.Predict(predict_request(model, {"x": np.float32(x)}), timeout=30)
    rest = requests.post(f"{grpc_served.url}/v1/models/{model}:predict", data=json.dumps({"instances": x}),
                         timeout=30).json()
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), np.float32(rest["predictions"]))


# ---------------------------------------------------------------------------------------------
# Classify, Regress, MultiInference
# ---------------------------------------------------------------------------------------------

def test_regress_known_answer(grpc_served):
    request = regression_pb2.RegressionRequest(input=examples_input(example(x=80.0), example(x=2.0)))
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = "regress_x_to_y"
    response = grpc_served.predict.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [42.0, 3.0]
    assert response.model_spec.name == "hp2"
    assert response.model_spec.version.value == 124
    assert response.model_spec.signature_name == "regress_x_to_y"
    rest = requests.post(f"{grpc_served.url}/v1/models/hp2:regress",
                         data=json.dumps({"signature_name": "regress_x_to_y",
                                          "examples": [{"x": 80.0}, {"x": 2.0}]}), timeout=30).json()
    assert rest["results"] == [r.value for r in response.result.regressions]


def test_classify_known_answer(grpc_served):
    request = classification_pb2.ClassificationRequest(input=examples_input(example(x=20.0)))
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = "classify_x_to_y"
    response = grpc_served.predict.Classify(request, timeout=30)
    (classifications,) = response.result.classifications
    (cls,) = classifications.classes
    assert (cls.label, cls.score) == ("", 12.0)
    assert response.model_spec.signature_name == "classify_x_to_y"
    assert response.model_spec.version.value == 124


def test_context_is_merged_under_each_example(grpc_served):
    """ExampleListWithContext: each example gets the context's features, its own winning."""
    request = regression_pb2.RegressionRequest(
        input=examples_input(example(), example(x=2.0), context=example(x=80.0)))
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = "regress_x_to_y"
    response = grpc_served.predict.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [42.0, 3.0]


def test_multi_inference_runs_every_task_on_one_version(grpc_served):
    request = inference_pb2.MultiInferenceRequest(input=examples_input(example(x=20.0), example(x=80.0)))
    for signature, method in (("classify_x_to_y", "tensorflow/serving/classify"),
                              ("regress_x_to_y", "tensorflow/serving/regress")):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "hp2"
        task.model_spec.version.value = 123
        task.model_spec.signature_name = signature
    response = grpc_served.predict.MultiInference(request, timeout=30)
    classify, regress = response.results
    assert [c.classes[0].score for c in classify.classification_result.classifications] == [12.0, 42.0]
    assert [r.value for r in regress.regression_result.regressions] == [12.0, 42.0]
    assert [r.model_spec.version.value for r in response.results] == [123, 123]
    assert [r.model_spec.signature_name for r in response.results] == ["classify_x_to_y", "regress_x_to_y"]


# ---------------------------------------------------------------------------------------------
# GetModelMetadata
# ---------------------------------------------------------------------------------------------

def test_get_model_metadata(grpc_served):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "hp2"
    request.model_spec.version.value = 123
    response = grpc_served.predict.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "hp2" and response.model_spec.version.value == 123
    assert not response.model_spec.signature_name  # TF Serving leaves it empty here
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(signature_defs.signature_def)
    assert signature_defs.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum
    rest = requests.get(f"{grpc_served.url}/v1/models/hp2/versions/123/metadata", timeout=30).json()
    assert set(rest["metadata"]["signature_def"]["signature_def"]) == set(signature_defs.signature_def)


# ---------------------------------------------------------------------------------------------
# Errors: TF Serving's status codes and messages
# ---------------------------------------------------------------------------------------------

def test_error_unknown_model(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("nope", {"x": [[1.0]]}))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in err.details()


def test_error_unknown_version(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"x": [[1.0]]}, version=99))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "99" in err.details()


def test_error_unknown_label(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"x": [[1.0]]}, label="nolabel"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "Unrecognized servable version label: nolabel"


def test_error_missing_input(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"z": [[1.0]]}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The core's check, in TF Serving's words (tensorflow/cc/saved_model/util.cc: GetInputValues).
    assert err.details().startswith("Signature input alias: x(feed name: x:0) not found in request")


def test_error_wrong_dtype(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"x": np.array([[1]], np.int32)}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not of expected type: float" in err.details()


def test_error_unknown_signature(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"x": [[1.0]]}, signature="nosig"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == 'Serving signature key "nosig" not found.'


def test_error_output_filter(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_request("two", {"x": [1.0]}, output_filter=["cube"]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == ("output tensor alias not found in signature: cube Outputs expected to be in the "
                             "set {double,square}.")
    err = rpc_error(grpc_served.predict.Predict, predict_request("two", {"x": [1.0]},
                                                                 output_filter=["double", "double"]))
    assert err.details() == "duplicate output tensor alias: double"


def test_error_tensor_parsing(grpc_served):
    bad = tf.make_tensor_proto(np.float32([[1.0], [2.0]]))
    bad.tensor_content = bad.tensor_content[:-1]
    err = rpc_error(grpc_served.predict.Predict, predict_request("hp2", {"x": bad}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "tensor parsing error: x"


def test_error_missing_model_spec_and_name(grpc_served):
    err = rpc_error(grpc_served.predict.Predict, predict_pb2.PredictRequest())
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "serving_default"
    err = rpc_error(grpc_served.predict.Predict, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")


def test_error_classify(grpc_served):
    request = classification_pb2.ClassificationRequest(input=examples_input(example(x=1.0)))
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = "nosig"
    err = rpc_error(grpc_served.predict.Classify, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "No signature was found with the name: nosig")
    request.model_spec.signature_name = "regress_x_to_y"  # no "classes" or "scores" output
    err = rpc_error(grpc_served.predict.Classify, request)
    assert (err.code(), err.details()[:68]) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "Expected classification signature outputs to contain at least one of")
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = "classify_x_to_y"
    err = rpc_error(grpc_served.predict.Classify, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")
    request.model_spec.name = "nope"  # the model is looked up before the input is read, as TF Serving
    assert rpc_error(grpc_served.predict.Classify, request).code() == grpc.StatusCode.NOT_FOUND


def test_error_multi_inference(grpc_served):
    def request(*tasks):
        req = inference_pb2.MultiInferenceRequest(input=examples_input(example(x=1.0)))
        for name, signature, method in tasks:
            task = req.tasks.add(method_name=method)
            task.model_spec.name = name
            task.model_spec.signature_name = signature
        return req
    call = grpc_served.predict.MultiInference
    reg = "tensorflow/serving/regress"
    err = rpc_error(call, request(("hp2", "regress_x_to_y", reg), ("hp2cpu", "regress_x_to_y", reg)))
    assert err.details() == "All ModelSpecs in a MultiInferenceRequest must access the same model name."
    err = rpc_error(call, request(("hp2", "regress_x_to_y", reg), ("hp2", "regress_x_to_y", reg)))
    assert err.details() == "Duplicate evaluation of signature: regress_x_to_y"
    err = rpc_error(call, request(("hp2", "nosig", reg)))
    assert err.details() == "Requested signature not found in model graph: nosig"
    err = rpc_error(call, request(("hp2", "serving_default", "tensorflow/serving/predict")))
    assert (err.code(), err.details()) == (grpc.StatusCode.UNIMPLEMENTED,
                                           "Unsupported signature method_name: tensorflow/serving/predict")
    assert rpc_error(call, request(("nope", "regress_x_to_y", reg))).code() == grpc.StatusCode.NOT_FOUND


def test_error_metadata(grpc_served):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "hp2"
    err = rpc_error(grpc_served.predict.GetModelMetadata, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                           "GetModelMetadataRequest must specify at least one metadata_field")
    request.metadata_field.append("graph")
    err = rpc_error(grpc_served.predict.GetModelMetadata, request)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Metadata field graph is not supported")
    err = rpc_error(grpc_served.predict.GetModelMetadata,
                    get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]))
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

def test_metrics_count_grpc_requests_with_the_grpc_entrypoint(grpc_served):
    grpc_served.predict.Predict(predict_request("hp2cpu", {"x": [[1.0]]}), timeout=30)
    rpc_error(grpc_served.predict.Predict, predict_request("hp2cpu", {"x": [[1.0]]}, signature="nosig"))
    page = requests.get(f"{grpc_served.url}/monitoring/prometheus/metrics", timeout=30).text
    lines = page.splitlines()

    def sample(name, **labels):
        return [line for line in lines if line.startswith(name + "{")
                and all(f'{k}="{v}"' in line for k, v in labels.items())]
    (timed,) = sample(":tensorflow:serving:request_latency_count", model_name="hp2cpu", API="Predict",
                      entrypoint="GRPC")
    assert float(timed.split()[-1]) >= 1
    (failed,) = sample(":tensorflow:serving:request_count", model_name="hp2cpu", status="FAILED_PRECONDITION")
    assert float(failed.split()[-1]) >= 1


# -- a call's deadline is its time limit for the batcher ------------------------------------------------

class _Deadline:
    """A servicer context whose client set a deadline `remaining` seconds away (None: no deadline)."""

    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining

    def abort(self, code, details):
        raise AssertionError(f"aborted: {code} {details}")


class _RecordingPlane:
    def __init__(self):
        self.timeouts = []

    def _result(self, outputs):
        from server.dataplane import Result
        return Result("m", 1, "serving_default", outputs)

    def predict(self, spec, inputs, output_filter=(), timeout_s=None):
        self.timeouts.append(timeout_s)
        return self._result({"y": np.ones((1, 1), np.float32)})

    def classify(self, spec, examples, timeout_s=None):
        self.timeouts.append(timeout_s)
        return self._result({"scores": np.ones((1, 1), np.float32)})

    def regress(self, spec, examples, timeout_s=None):
        self.timeouts.append(timeout_s)
        return self._result({"outputs": np.ones((1,), np.float32)})


def test_the_grpc_deadline_reaches_the_core_as_the_time_limit():
    from server.grpc.prediction_service import PredictionService
    plane = _RecordingPlane()
    service = PredictionService(plane)
    for remaining in (1.5, None):
        service.Predict(predict_request("m", {"x": np.ones((1, 1), np.float32)}), _Deadline(remaining))
        request = classification_pb2.ClassificationRequest(input=examples_input(example(x=1.0)))
        request.model_spec.name = "m"
        service.Classify(request, _Deadline(remaining))
        request = regression_pb2.RegressionRequest(input=examples_input(example(x=1.0)))
        request.model_spec.name = "m"
        service.Regress(request, _Deadline(remaining))
    assert plane.timeouts == [1.5] * 3 + [None] * 3
