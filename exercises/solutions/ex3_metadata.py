"""习题 3 的参考答案：读取模型的元数据（metadata），弄清签名的输入。"""
import json

import requests


def fetch_metadata(url, model_name):
    return requests.get("%s/v1/models/%s/metadata" % (url, model_name), timeout=10).json()


def describe_inputs(metadata, signature_name="serving_default"):
    signature = metadata["metadata"]["signature_def"]["signature_def"][signature_name]
    described = []
    for name, tensor in sorted(signature["inputs"].items()):
        dims = tensor.get("tensor_shape", {}).get("dim", [])
        shape = [int(dim["size"]) for dim in dims]  # protobuf 的 JSON 把 int64 写成字符串
        described.append((name, tensor["dtype"], shape))
    return described


if __name__ == "__main__":
    metadata = fetch_metadata("http://localhost:8501", "MLP")
    print(json.dumps(metadata, indent=1)[:300])
    print(describe_inputs(metadata, "call"))
