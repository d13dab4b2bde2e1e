"""习题 1 的检查：客户端用列格式（"inputs"）发送请求，并读出列格式的响应（"outputs"）。"""
import json

import numpy as np
import pytest
import requests

from checklib import call


@pytest.mark.exercise
def test_ex1_columnar(load_exercise, request):
    ex = load_exercise("ex1_columnar")
    images = np.zeros([2, 28, 28, 1], dtype=np.float32)
    body = call(ex.build_request, images, "call")
    assert isinstance(body, dict), f"build_request 应当返回一个字典（JSON 对象），而不是 {type(body).__name__}"
    assert "instances" not in body, (
        'build_request 仍在用行格式（键 "instances"）：列格式的请求把整批数据放在键 "inputs" 下')
    assert "inputs" in body, f'列格式的请求应当有键 "inputs"，而 build_request 返回的键是 {sorted(body)}'
    assert body.get("signature_name") == "call", '请求里要保留 "signature_name": "call"'
    json.dumps(body)  # 必须能转成 JSON

    # 先在本地检查 read_predictions：列格式的响应是 {"outputs": ...}
    fake = np.arange(20, dtype=np.float64).reshape(2, 10) / 100
    try:
        read = call(ex.read_predictions, {"outputs": fake.tolist()})
    except KeyError as error:
        pytest.fail(f'read_predictions 找不到键 {error}：列格式的响应是 {{"outputs": [...]}}，不再有 "predictions"',
                    pytrace=False)
    assert np.allclose(np.asarray(read, dtype=np.float64), fake), (
        'read_predictions 没有读出列格式的响应：列格式的响应是 {"outputs": [...]}，不再有 "predictions"')

    # 再向真正的服务器发请求，与本地模型的输出比较
    mnist, server = request.getfixturevalue("mnist"), request.getfixturevalue("server")
    url = f"{server.url}/v1/models/MLP:predict"
    try:
        probabilities = np.asarray(call(ex.predict, url, mnist.images, "call"))
    except requests.HTTPError as error:
        pytest.fail(f"服务器拒绝了请求：{error.response.status_code} {error.response.text[:300]}", pytrace=False)
    assert probabilities.shape == mnist.v1.shape, f"predict 应返回形状 {mnist.v1.shape} 的概率，实际是 {probabilities.shape}"
    assert np.allclose(probabilities, mnist.v1, atol=1e-4), "predict 的结果与模型在本地算出的概率不一致"
