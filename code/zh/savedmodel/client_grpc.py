"""gRPC 客户端：把前 10 张测试图像发给 TensorFlow Serving 的 gRPC API（默认端口 8500），打印预测的数字与真实标签。

输出与 client.py（REST）相同。运行前先启动服务器（模型名 MLP，模型目录为 train_and_export.py 导出的
saved_with_signature），然后：
    python client_grpc.py
    python client_grpc.py --host 127.0.0.1 --port 8500 --model_name MLP --signature_name call
"""
import argparse
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from mnist_loader import MNISTLoader


def main(argv=None):
    parser = argparse.ArgumentParser(description="通过 gRPC 向 TensorFlow Serving 发送 MNIST 图像并打印预测结果")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--model_name", default="MLP")
    parser.add_argument("--signature_name", default="call")
    parser.add_argument("--timeout", type=float, default=30, help="等待服务器响应的最长秒数")
    args = parser.parse_args(argv)
    address = "%s:%d" % (args.host, args.port)

    data_loader = MNISTLoader()
    # 一个 PredictRequest：模型名、签名名，以及签名的输入 "inputs"（用 tf.make_tensor_proto 把数组转成 TensorProto）
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model_name
    request.model_spec.signature_name = args.signature_name
    request.inputs["inputs"].CopyFrom(tf.make_tensor_proto(data_loader.test_data[0:10]))

    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=args.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                print("无法连接到 %s，请先启动服务器。" % address, file=sys.stderr)
            elif e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                print("服务器在 %g 秒内没有响应：%s" % (args.timeout, address), file=sys.stderr)
            else:  # TensorFlow Serving 出错时返回状态码和一句说明
                print("服务器返回错误（%s）：%s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
    # 输出 "output_0" 也是 TensorProto，用 tf.make_ndarray 转回 NumPy 数组
    predictions = tf.make_ndarray(response.outputs["output_0"])
    print(np.argmax(predictions, axis=-1))
    print(data_loader.test_label[0:10])
    return 0


if __name__ == "__main__":
    sys.exit(main())
