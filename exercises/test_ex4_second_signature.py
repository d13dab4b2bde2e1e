"""习题 4 的检查：导出的 SavedModel 有签名 call 与 predict_digit（int64 的数字），服务器按名字调用它。"""
import json

import numpy as np
import pytest
import requests

from checklib import call, publish


@pytest.mark.exercise
def test_ex4_second_signature(load_exercise, request, tmp_path):
    import tensorflow as tf

    import train_and_export as tae

    ex = load_exercise("ex4_second_signature")
    tf.keras.utils.set_random_seed(4)
    model = tae.MLP()   # 未训练的 MLP 就够了：检查的是签名，而不是准确率
    images = np.random.default_rng(4).random([6, 28, 28, 1], dtype=np.float32)
    expected = np.argmax(np.asarray(model(images)), axis=-1).tolist()

    export_dir = tmp_path / "export"
    call(ex.export_two_signatures, model, str(export_dir))
    loaded = tf.saved_model.load(str(export_dir))
    names = sorted(loaded.signatures.keys())
    assert "call" in names, f"导出的 SavedModel 里应当仍有签名 call，现有签名：{names}"
    assert "predict_digit" in names, f"导出的 SavedModel 里没有签名 predict_digit，现有签名：{names}"
    signature = loaded.signatures["predict_digit"]
    outputs = signature(**{name: tf.constant(images) for name in signature.structured_input_signature[1]})
    assert len(outputs) == 1, f"签名 predict_digit 应当只有一个输出，实际有 {sorted(outputs)}"
    digits = next(iter(outputs.values()))
    assert digits.dtype == tf.int64, f"签名 predict_digit 的输出应当是 int64，实际是 {digits.dtype.name}"
    assert digits.shape.rank == 1 and digits.numpy().tolist() == expected, (
        f"签名 predict_digit 应当返回每张图像概率最大的数字 {expected}，实际返回 {digits.numpy().tolist()}")

    # 把导出的模型作为版本 2 发布给正在运行的服务器（模型 MLP_two），再用 predict_digits 按名字调用签名
    server = request.getfixturevalue("server")
    publish(export_dir, server.bases["MLP_two"], 2)
    server.wait_available("MLP_two", "2")
    answer = requests.post(f"{server.url}/v1/models/MLP_two/versions/2:predict", timeout=30,
                           data=json.dumps({"signature_name": "predict_digit", "instances": images.tolist()}))
    assert answer.status_code == 200 and answer.json()["predictions"] == expected, f"服务器的响应不对：{answer.text[:300]}"
    try:
        got = call(ex.predict_digits, server.url, "MLP_two", images)
    except requests.HTTPError as error:
        pytest.fail(f"服务器拒绝了 predict_digits 的请求：{error.response.text[:300]}", pytrace=False)
    assert got == expected, (
        f"predict_digits 应当返回数字列表 {expected}（请求中 \"signature_name\": \"predict_digit\"），实际返回 {str(got)[:200]}")
