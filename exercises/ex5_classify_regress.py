"""习题 5：用 classify 与 regress 调用 TensorFlow Serving 的测试模型 half_plus_two（y = 0.5 * x + 2）。

签名 regress_x_to_y 与 classify_x_to_y 的输入不是数组，而是序列化的 tf.train.Example：
请求体不用 "instances"/"inputs"，而是 "examples"，每个样本是一个 {特征名: 值} 的对象，例如
    {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
（所有样本共有的特征还可以放进 "context"，服务器会把它合并进每个样本。）
注意：特征值 80.0 必须是小数，整数 80 会变成 int64 特征，而模型读的是 float 特征。
请完成 regress_request 与 classify_request，运行检查：
    python -m pytest -m exercise exercises/test_ex5_classify_regress.py
"""
import json

import requests


def regress_request(xs):
    # TODO: 这是 predict 的请求格式；regress 要的是 "examples"
    return {"signature_name": "regress_x_to_y", "instances": [[x] for x in xs]}


def classify_request(xs):
    # TODO: 签名 classify_x_to_y，样本的格式与 regress 相同
    raise NotImplementedError("返回 classify 的请求体")


def post(url, model_name, verb, body):
    response = requests.post("%s/v1/models/%s:%s" % (url, model_name, verb), data=json.dumps(body), timeout=30)
    answer = response.json()
    if response.status_code != 200:
        raise RuntimeError("HTTP %d：%s" % (response.status_code, answer.get("error")))
    return answer["results"]


def regress(url, model_name, xs):
    """返回每个 x 的回归结果，例如 [42.0]。"""
    return post(url, model_name, "regress", regress_request(xs))


def classify(url, model_name, xs):
    """返回每个 x 的分类结果：每个样本是 [[类别名, 分数], ...]，例如 [[["", 12.0]]]。"""
    return post(url, model_name, "classify", classify_request(xs))


if __name__ == "__main__":
    print(regress("http://localhost:8501", "half_plus_two", [80.0]))
    print(classify("http://localhost:8501", "half_plus_two", [20.0]))
