"""习题 4：给导出的模型再加一个签名 predict_digit，并按名字调用它。

签名 call 返回 10 个数字各自的概率。请在 export_two_signatures 中再导出一个签名 predict_digit：
输入与 call 相同（float32，形状 [None, 28, 28, 1]），输出是概率最大的数字（int64，形状 [None]），
也就是 tf.argmax(model.call(inputs), axis=-1, output_type=tf.int64)。
然后完成 predict_digits：在请求中用 "signature_name" 指定签名 predict_digit，返回数字的列表。
运行检查：
    python -m pytest -m exercise exercises/test_ex4_second_signature.py
"""
import json

import requests
import tensorflow as tf


def export_two_signatures(model, path):
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="call", fn=model.call,
                         input_signature=[tf.TensorSpec(shape=[None, 28, 28, 1], dtype=tf.float32)])
    # TODO: 再加一个 endpoint，名字是 predict_digit，返回 int64 的数字
    archive.write_out(path, verbose=False)


def predict_digits(url, model_name, images):
    """把 images 发给模型 model_name 的签名 predict_digit，返回预测的数字列表，例如 [7, 2, 1]。"""
    # TODO: 改用签名 predict_digit，并返回数字而不是概率
    data = json.dumps({"signature_name": "call", "instances": images.tolist()})
    response = requests.post("%s/v1/models/%s:predict" % (url, model_name), data=data, timeout=30)
    response.raise_for_status()
    return response.json()["predictions"]
