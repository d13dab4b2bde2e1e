"""习题 4 的参考答案：给导出的模型再加一个签名 predict_digit，并按名字调用它。"""
import json

import requests
import tensorflow as tf


def export_two_signatures(model, path):
    spec = tf.TensorSpec(shape=[None, 28, 28, 1], dtype=tf.float32)
    archive = tf.keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="call", fn=model.call, input_signature=[spec])

    def predict_digit(inputs):
        return tf.argmax(model.call(inputs), axis=-1, output_type=tf.int64)  # [batch_size]

    archive.add_endpoint(name="predict_digit", fn=predict_digit, input_signature=[spec])
    archive.write_out(path, verbose=False)


def predict_digits(url, model_name, images):
    """把 images 发给模型 model_name 的签名 predict_digit，返回预测的数字列表，例如 [7, 2, 1]。"""
    data = json.dumps({"signature_name": "predict_digit", "instances": images.tolist()})
    response = requests.post("%s/v1/models/%s:predict" % (url, model_name), data=data, timeout=30)
    response.raise_for_status()
    return response.json()["predictions"]  # 签名只有一个输出时，每个样本的预测就是这个输出的值
