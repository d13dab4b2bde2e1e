"""习题 1：把客户端改为列格式（columnar format）。

client.py 用行格式发送请求：{"instances": [图像1, 图像2, ...]}，响应是 {"predictions": [...]}。
请把下面的 build_request 改为列格式 {"inputs": ...}，并让 read_predictions 读出列格式的响应
（响应中的键不再是 predictions）。改完后运行检查：
    python -m pytest -m exercise exercises/test_ex1_columnar.py
"""
import json
import sys

import numpy as np
import requests


def build_request(images, signature_name="call"):
    # TODO: 改为列格式
    return {"signature_name": signature_name, "instances": images.tolist()}


def read_predictions(answer):
    # TODO: 列格式的响应里，预测结果放在哪个键下？
    return np.array(answer["predictions"])


def predict(url, images, signature_name="call"):
    """把 images（[n, 28, 28, 1] 的 float32 数组）发给 url，返回 [n, 10] 的概率数组。"""
    response = requests.post(url, data=json.dumps(build_request(images, signature_name)), timeout=30)
    response.raise_for_status()
    return read_predictions(response.json())


if __name__ == "__main__":
    sys.path.insert(0, "code/zh/savedmodel")  # 在仓库根目录运行：python exercises/ex1_columnar.py
    from mnist_loader import MNISTLoader
    data_loader = MNISTLoader()
    probabilities = predict("http://localhost:8501/v1/models/MLP:predict", data_loader.test_data[0:10])
    print(np.argmax(probabilities, axis=-1))
    print(data_loader.test_label[0:10])
