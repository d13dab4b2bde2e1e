"""server/tf_example.py: TF Serving's checks of classification/regression signatures and outputs, and
how serialized examples are built from a tensorflow.serving.Input."""
import numpy as np
import pytest
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import input_pb2

from server import tf_example
from server.errors import ServingError
from server.signatures import Signature


def error(fn, *args):
    with pytest.raises(ServingError) as e:
        fn(*args)
    return e.value


@pytest.mark.parametrize("outputs,n,message", [
    ({"scores": np.zeros(2, np.float32)}, 2, "Expected Tensor shape: [batch_size num_classes] but got [2]"),
    ({"scores": np.zeros((2, 1))}, 2, "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE"),
    ({"classes": np.zeros((2, 1), np.float32)}, 2, "Expected classes Tensor of DT_STRING. Got: DT_FLOAT"),
    ({"scores": np.zeros((3, 1), np.float32)}, 2, "Expected scores output batch size of 2. Got: 3"),
    ({"scores": np.zeros((2, 3), np.float32), "classes": np.array([[b"a"], [b"b"]], object)}, 2,
     "Tensors class and score should match in dim_size(1). Got 1 vs. 3"),
])
def test_classification_output_checks(outputs, n, message):
    assert error(tf_example.check_classify_outputs, outputs, n).message == message


@pytest.mark.parametrize("arr,n,message", [
    (np.zeros((2, 3), np.float32), 2,
     "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [2,3]"),
    (np.zeros(3, np.float32), 2, "Input batch size did not match output batch size: 2 vs. 3"),
    (np.zeros(2, np.float64), 2, "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"),
])
def test_regression_output_checks(arr, n, message):
    assert error(tf_example.check_regress_outputs, {"outputs": arr}, n).message == message


def _sig(method, inputs, outputs):
    proto = meta_graph_pb2.SignatureDef(method_name=method)
    for k in inputs:
        proto.inputs[k].name = k + ":0"
    for k in outputs:
        proto.outputs[k].name = k + ":0"
    return Signature.from_proto("s", proto)


def test_signature_checks():
    assert tf_example.check_classify_signature(
        _sig(tf_example.CLASSIFY_METHOD, ["inputs"], ["scores"])) == ("inputs", ["scores"])
    assert tf_example.check_regress_signature(
        _sig(tf_example.REGRESS_METHOD, ["inputs"], ["outputs"])) == ("inputs", ["outputs"])
    # The method_name is not checked here: only --enable_signature_method_name_check does, as TF Serving
    # (signatures.check_method_name); a regression signature fails for its outputs instead.
    e = error(tf_example.check_classify_signature, _sig(tf_example.REGRESS_METHOD, ["inputs"], ["outputs"]))
    assert e.code == "INVALID_ARGUMENT" and 'at least one of "classes" or "scores"' in e.message
    assert tf_example.check_regress_signature(
        _sig(tf_example.PREDICT_METHOD, ["inputs"], ["outputs"])) == ("inputs", ["outputs"])
    e = error(tf_example.check_classify_signature, _sig(tf_example.CLASSIFY_METHOD, ["inputs"], ["other"]))
    assert e.code == "INVALID_ARGUMENT" and 'at least one of "classes" or "scores"' in e.message
    assert error(tf_example.check_regress_signature,
                 _sig(tf_example.REGRESS_METHOD, ["a", "b"], ["outputs"])).message == "Expected one input Tensor."


def test_serialize_input_puts_the_context_first():
    request = input_pb2.Input()
    listed = request.example_list_with_context
    listed.context.features.feature["c"].float_list.value.append(1.0)
    for value in (2.0, 3.0):
        listed.examples.add().features.feature["x"].float_list.value.append(value)
    out = tf_example.serialize_input(request)
    context = listed.context.SerializeToString()
    assert len(out) == 2 and out.copied_size == 2 * len(context)
    assert list(out) == [context + e.SerializeToString() for e in listed.examples]
    merged = example_pb2.Example.FromString(out[1])
    assert merged.features.feature["c"].float_list.value == [1.0]
    assert merged.features.feature["x"].float_list.value == [3.0]


def test_serialize_input_plain_list_and_empty_input():
    request = input_pb2.Input()
    request.example_list.examples.add().features.feature["x"].int64_list.value.append(7)
    assert list(tf_example.serialize_input(request)) == [request.example_list.examples[0].SerializeToString()]
    for empty in (input_pb2.Input(), input_pb2.Input(example_list=input_pb2.ExampleList())):
        e = error(tf_example.serialize_input, empty)
        assert (e.code, e.message) == ("INVALID_ARGUMENT", "Input is empty.")



def test_merge_examples_checks_the_size_before_copying_the_context():
    examples = tf_example.Examples([b"a", b"bc"], b"0123456789")
    assert examples.copied_size == 20
    with pytest.raises(ServingError) as e:
        tf_example.merge_examples(examples, 19)
    assert e.value.code == "INVALID_ARGUMENT"
    assert e.value.message == ("Request's context of 10 bytes copied into each of its 2 examples takes 20 bytes, "
                               "more than the limit of 19 (8 x --max_request_elements)")
    assert examples._merged is None  # nothing was copied
    assert tf_example.merge_examples(examples, 20) == [b"0123456789a", b"0123456789bc"]
    assert tf_example.merge_examples(tf_example.Examples([b"big" * 100]), 1) == [b"big" * 100]  # no context
    assert tf_example.merge_examples([b"x"], 0) == [b"x"]
