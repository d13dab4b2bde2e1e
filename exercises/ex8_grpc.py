"""习题 8：用 gRPC 调用模型。

TensorFlow Serving 除了 REST API（默认端口 8501），还在 --port（默认 8500）上提供 gRPC 接口。
请求和响应不是 JSON，而是 protobuf 消息，定义在 tensorflow-serving-api 包中：
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
一个 PredictRequest 里有：model_spec.name（模型名）、model_spec.signature_name（签名名）、
inputs（输入名 -> TensorProto，用 tf.make_tensor_proto 从 NumPy 数组生成）。
PredictResponse 的 outputs 把输出名映射到 TensorProto（用 tf.make_ndarray 转回 NumPy 数组）。
请完成：
1. build_request：构造调用签名 signature_name 的 PredictRequest（输入名 inputs，float32）；
2. read_probabilities：从 PredictResponse 中读出输出 output_0，返回 NumPy 数组；
3. predict：连接 host:port，用 PredictionServiceStub 的 Predict 发送请求，返回概率。
运行检查：
    python -m pytest -m exercise exercises/test_ex8_grpc.py
"""
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def build_request(model_name, signature_name, images):
    # TODO: 新建 predict_pb2.PredictRequest()，填写 model_spec 的 name 与 signature_name，
    #       把 images 放进 inputs["inputs"]，再返回它
    raise NotImplementedError("填写 model_spec 与 inputs")


def read_probabilities(response):
    # TODO: response.outputs["output_0"] 是一个 TensorProto
    raise NotImplementedError("用 tf.make_ndarray 读出 output_0")


def predict(host, port, model_name, signature_name, images, timeout=10):
    # TODO: 用 build_request 构造请求，用 grpc.insecure_channel 连接 "host:port"，
    #       再用 prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict 发送，用 read_probabilities 读出结果
    raise NotImplementedError("连接 %s:%d 并发送 PredictRequest" % (host, port))
