"""习题 8 的参考答案：用 gRPC 调用模型。"""
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def build_request(model_name, signature_name, images):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(np.asarray(images, dtype=np.float32)))
    return request


def read_probabilities(response):
    return tf.make_ndarray(response.outputs["output_0"])


def predict(host, port, model_name, signature_name, images, timeout=10):
    request = build_request(model_name, signature_name, images)
    with grpc.insecure_channel("%s:%d" % (host, port)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return read_probabilities(stub.Predict(request, timeout=timeout))
