"""习题 8 的检查：build_request 构造的 PredictRequest、read_probabilities 读出的输出，以及真正的 gRPC 调用。"""
import numpy as np
import pytest

from checklib import call


@pytest.mark.exercise
def test_ex8_grpc(load_exercise, mnist, request):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    ex = load_exercise("ex8_grpc")
    got = call(ex.build_request, "MLP", "call", mnist.images)
    assert isinstance(got, predict_pb2.PredictRequest), f"build_request 应当返回 PredictRequest，实际返回 {type(got)}"
    assert got.model_spec.name == "MLP" and got.model_spec.signature_name == "call", (
        f"model_spec 应当是 name: MLP、signature_name: call，实际是 {got.model_spec}")
    assert list(got.inputs) == ["inputs"], f"输入名应当是 inputs（签名 call 的输入名），实际是 {list(got.inputs)}"
    sent = tf.make_ndarray(got.inputs["inputs"])
    assert sent.dtype == np.float32 and sent.shape == mnist.images.shape, (
        f"inputs 应当是形状 {mnist.images.shape} 的 float32 张量，实际是 {sent.dtype} {sent.shape}")
    np.testing.assert_allclose(sent, mnist.images)

    response = predict_pb2.PredictResponse()
    expected = np.random.default_rng(0).random((3, 10)).astype(np.float32)
    response.outputs["output_0"].CopyFrom(tf.make_tensor_proto(expected))
    read = call(ex.read_probabilities, response)
    assert np.array_equal(np.asarray(read), expected), "read_probabilities 应当用 tf.make_ndarray 读出 output_0"

    server = request.getfixturevalue("server")
    probabilities = call(ex.predict, "127.0.0.1", server.grpc_port, "MLP", "call", mnist.images)
    assert np.allclose(probabilities, mnist.v1, atol=1e-4), "gRPC 返回的概率与模型在本地算出的不同"
