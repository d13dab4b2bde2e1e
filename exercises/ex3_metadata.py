"""习题 3：读取模型的元数据（metadata），弄清签名的输入。

GET /v1/models/<模型名>/metadata 返回模型的全部签名（SignatureDef），格式是 protobuf 的 JSON 形式：
    {"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {签名名: 签名, ...}}}}
每个签名里，"inputs" 把输入名映射到 {"name": 张量名, "dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, ...]}}。
请完成：
1. fetch_metadata：取回模型的元数据（注意地址）；
2. describe_inputs：返回签名 signature_name 的每个输入的 (输入名, dtype, 形状)，按输入名排序，
   形状是整数列表（size 在 JSON 里是字符串，-1 表示任意长度），例如 [("inputs", "DT_FLOAT", [-1, 28, 28, 1])]。
运行检查：
    python -m pytest -m exercise exercises/test_ex3_metadata.py
"""
import json

import requests


def fetch_metadata(url, model_name):
    # TODO: 这个地址返回的是模型状态，而不是元数据
    return requests.get("%s/v1/models/%s" % (url, model_name), timeout=10).json()


def describe_inputs(metadata, signature_name="serving_default"):
    # TODO: 从 metadata["metadata"]["signature_def"]["signature_def"][signature_name]["inputs"] 中读出每个输入
    raise NotImplementedError("返回 [(输入名, dtype, 形状), ...]")


if __name__ == "__main__":
    metadata = fetch_metadata("http://localhost:8501", "MLP")
    print(json.dumps(metadata, indent=1)[:300])
    print(describe_inputs(metadata, "call"))
