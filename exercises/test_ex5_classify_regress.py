"""习题 5 的检查：regress 与 classify 的请求体用 "examples"，half_plus_two 返回 0.5 * x + 2。"""
import json

import numpy as np
import pytest

from checklib import call


def check_body(body, function, signature, xs):
    assert isinstance(body, dict), f"{function} 应当返回一个字典（JSON 对象），实际返回 {body!r}"
    assert "instances" not in body and "inputs" not in body, (
        f'{function} 用了 predict 的格式（"instances"/"inputs"）：classify 与 regress 的样本放在 "examples" 中，'
        '每个样本是 {"x": 值}')
    assert body.get("signature_name") == signature, f'{function} 的请求中应有 "signature_name": "{signature}"，实际是 {body}'
    examples = body.get("examples")
    assert isinstance(examples, list) and len(examples) == len(xs), f'{function} 的请求中应有 "examples"：每个 x 一个样本'
    for example, x in zip(examples, xs):
        assert isinstance(example, dict) and set(example) <= {"x"}, f"每个样本应当是 {{\"x\": 值}} 形式的对象，实际是 {example!r}"
    json.dumps(body)


@pytest.mark.exercise
def test_ex5_classify_regress(load_exercise, request):
    ex = load_exercise("ex5_classify_regress")
    # 其中 80 是一个整数：请求里必须把它写成小数 80.0，否则服务器会把它当作 int64 特征
    xs = [80, 20.0, *np.round(np.random.default_rng().uniform(-100, 100, 3), 3).tolist()]
    check_body(call(ex.regress_request, xs), "regress_request", "regress_x_to_y", xs)
    check_body(call(ex.classify_request, xs), "classify_request", "classify_x_to_y", xs)

    server = request.getfixturevalue("server")
    expected = [0.5 * x + 2 for x in xs]
    try:
        regressed = call(ex.regress, server.url, "half_plus_two", xs)
        classified = call(ex.classify, server.url, "half_plus_two", xs)
    except RuntimeError as error:  # post() 把服务器的错误变成 RuntimeError
        pytest.fail(f"服务器拒绝了请求：{error}（特征 x 是不是写成了整数？）", pytrace=False)
    assert np.allclose(regressed, expected, atol=1e-4), f"regress 应当返回 {expected}，实际返回 {regressed}"
    assert len(classified) == len(xs), f"classify 应当为每个样本返回一个结果，实际返回 {classified}"
    for result, y in zip(classified, expected):
        assert len(result) == 1 and result[0][0] == "" and abs(result[0][1] - y) < 1e-4, (
            f'half_plus_two 的 classify 对每个样本应返回 [["", {y}]]，实际是 {result}')
