"""习题 5 的参考答案：用 classify 与 regress 调用 TensorFlow Serving 的测试模型 half_plus_two（y = 0.5 * x + 2）。"""
import json

import requests


def regress_request(xs):
    # 每个样本是一个 tf.train.Example：特征 x 是一个 float（float() 保证它不会被写成整数）
    return {"signature_name": "regress_x_to_y", "examples": [{"x": float(x)} for x in xs]}


def classify_request(xs):
    return {"signature_name": "classify_x_to_y", "examples": [{"x": float(x)} for x in xs]}


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
