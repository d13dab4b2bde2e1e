"""习题 2 的检查：发布版本 2 后，不重启服务器，版本 2 变为 AVAILABLE，预测来自版本 2。"""
import json

import numpy as np
import pytest
import requests

from checklib import call


@pytest.mark.exercise
def test_ex2_hot_update(load_exercise, request, tmp_path):
    ex = load_exercise("ex2_hot_update")
    # 先在临时目录里试一次 publish_version（用一个假的 SavedModel 目录，不需要服务器）
    fake = tmp_path / "export"
    (fake / "variables").mkdir(parents=True)
    (fake / "saved_model.pb").write_bytes(b"fake")
    (tmp_path / "base" / "1").mkdir(parents=True)
    path = call(ex.publish_version, str(fake), str(tmp_path / "base"), 2)
    assert (tmp_path / "base" / "2" / "saved_model.pb").read_bytes() == b"fake", (
        "publish_version 之后 <模型目录>/2/saved_model.pb 应当是 export_dir 中的 saved_model.pb")

    mnist, server = request.getfixturevalue("mnist"), request.getfixturevalue("server")
    base, pid = server.bases["MLP_hot"], server.process.proc.pid
    path = call(ex.publish_version, str(mnist.export_v2), str(base), 2)
    assert path is not None and str(path) == str(base / "2"), f"publish_version 应当返回新版本的目录 {base / '2'}，实际返回 {path!r}"
    assert (base / "2" / "saved_model.pb").is_file(), "版本目录 2 里没有 saved_model.pb：SavedModel 没有完整地复制过去"
    leftovers = sorted(p.name for p in base.iterdir() if p.name not in ("1", "2"))
    assert not leftovers, f"模型目录里留下了多余的目录 {leftovers}：临时目录应当改名为版本号，而不是留在那里"

    status = call(ex.wait_until_available, server.url, "MLP_hot", 2, timeout=90)
    states = {s.get("version"): s.get("state") for s in (status or {}).get("model_version_status", [])}
    assert states.get("2") == "AVAILABLE", (
        f"wait_until_available 返回时版本 2 还不是 AVAILABLE（返回的状态：{states}）："
        "它应当反复查询 GET /v1/models/MLP_hot，直到版本 2 的 state 为 AVAILABLE")

    probabilities = np.asarray(call(ex.predict_version, server.url, "MLP_hot", 2, mnist.images))
    assert np.allclose(probabilities, mnist.v2, atol=1e-4), "predict_version(..., 2, ...) 的结果不是版本 2 的输出"
    try:
        call(ex.predict_version, server.url, "MLP_hot", 99, mnist.images)
    except requests.HTTPError as error:
        assert error.response.status_code == 404, f"向不存在的版本 99 请求应得到 404，实际是 {error.response.status_code}"
    else:
        pytest.fail("predict_version(..., 99, ...) 没有出错：服务器没有版本 99，说明请求地址里没有带上 /versions/<版本号>",
                    pytrace=False)

    # 不指定版本时，服务器已经改用版本 2 响应，而且服务器进程没有重启
    answer = requests.post(f"{server.url}/v1/models/MLP_hot:predict", timeout=30,
                           data=json.dumps({"signature_name": "call", "instances": mnist.images.tolist()})).json()
    assert np.allclose(answer["predictions"], mnist.v2, atol=1e-4), f"默认版本的响应不是版本 2 的输出：{answer}"
    assert server.process.proc.poll() is None and server.process.proc.pid == pid, "服务器进程不应重启"
