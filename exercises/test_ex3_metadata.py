"""习题 3 的检查：describe_inputs 从元数据中读出输入名、dtype 与形状；fetch_metadata 取回真正的元数据。"""
import pytest

from checklib import call


def tensor(name, dtype, sizes):
    return {"name": name, "dtype": dtype,
            "tensor_shape": {"dim": [{"size": str(size), "name": ""} for size in sizes], "unknown_rank": False}}


# 一个虚构模型的元数据，格式与服务器的响应相同：签名 pair 有两个输入
FAKE_METADATA = {
    "model_spec": {"name": "fake", "signature_name": "", "version": "7"},
    "metadata": {"signature_def": {"signature_def": {
        "serving_default": {"inputs": {"images": tensor("a:0", "DT_UINT8", [-1, 32, 32, 3])},
                            "outputs": {"scores": tensor("b:0", "DT_FLOAT", [-1, 5])},
                            "method_name": "tensorflow/serving/predict"},
        "pair": {"inputs": {"y": tensor("c:0", "DT_STRING", [-1]), "x": tensor("d:0", "DT_INT64", [-1, 3])},
                 "outputs": {"z": tensor("e:0", "DT_DOUBLE", [])},
                 "method_name": "tensorflow/serving/predict"}}}}}


def normalized(described):
    return [(name, dtype, [int(size) for size in shape]) for name, dtype, shape in described]


@pytest.mark.exercise
def test_ex3_metadata(load_exercise, request):
    ex = load_exercise("ex3_metadata")
    got = call(ex.describe_inputs, FAKE_METADATA, "pair")
    expected = [("x", "DT_INT64", [-1, 3]), ("y", "DT_STRING", [-1])]
    assert isinstance(got, list) and all(len(item) == 3 for item in got), (
        f"describe_inputs 应当返回 [(输入名, dtype, 形状), ...] 形式的列表，实际返回 {got!r}")
    assert normalized(got) == expected, (
        f"虚构元数据中签名 pair 的输入应当是 {expected}（按输入名排序，形状为整数列表），describe_inputs 返回 {got!r}")
    got = call(ex.describe_inputs, FAKE_METADATA, "serving_default")
    assert normalized(got) == [("images", "DT_UINT8", [-1, 32, 32, 3])], f"签名 serving_default 的输入读错了：{got!r}"

    server = request.getfixturevalue("server")
    metadata = call(ex.fetch_metadata, server.url, "MLP")
    assert isinstance(metadata, dict) and "metadata" in metadata, (
        "fetch_metadata 返回的 JSON 里没有键 \"metadata\"：元数据的地址是 /v1/models/<模型名>/metadata，"
        f"实际得到的是 {str(metadata)[:200]}")
    for signature in ("call", "serving_default"):
        got = call(ex.describe_inputs, metadata, signature)
        assert normalized(got) == [("inputs", "DT_FLOAT", [-1, 28, 28, 1])], (
            f"MLP 的签名 {signature} 的输入应当是 inputs（DT_FLOAT，形状 [-1, 28, 28, 1]），describe_inputs 返回 {got!r}")
