"""习题 2：部署版本 2，观察热更新（不重启服务器）。

服务器每隔 --file_system_poll_wait_seconds 秒检查一次模型目录；出现新的数字子目录（版本）时，
先加载新版本，再卸载旧版本。请完成三个函数：
1. publish_version：把导出好的 SavedModel 目录复制为 model_base_path/<version>。
   服务器可能在复制到一半时就看到这个目录，所以先复制到一个名字不是数字的临时目录，再用 os.rename 改名；
2. wait_until_available：反复查询模型状态 GET /v1/models/<模型名>，直到该版本的 state 为 AVAILABLE；
3. predict_version：向指定的版本发请求（地址中带上 /versions/<版本号>）。
运行检查：
    python -m pytest -m exercise exercises/test_ex2_hot_update.py
"""
import json
import os  # noqa: F401 -- 完成 TODO 时可能用到
import shutil  # noqa: F401 -- 完成 TODO 时可能用到
import time  # noqa: F401 -- 完成 TODO 时可能用到

import numpy as np
import requests


def publish_version(export_dir, model_base_path, version):
    """把 export_dir 中的 SavedModel 发布为 model_base_path/<version>，返回新版本的目录。"""
    # TODO: 先 shutil.copytree 到临时目录（例如 ".tmp-2"），再 os.rename 为版本号
    raise NotImplementedError("把 SavedModel 复制到临时目录，再改名为版本号")


def wait_until_available(url, model_name, version, timeout=60):
    """等到模型 model_name 的版本 version 可用，返回此时的模型状态（JSON）。"""
    status = requests.get("%s/v1/models/%s" % (url, model_name), timeout=10).json()
    # TODO: 只查询了一次；请每隔一小段时间查询一次，直到版本 version 的 state 为 "AVAILABLE"（最多等 timeout 秒）
    return status


def predict_version(url, model_name, version, images):
    """用模型的版本 version 预测 images，返回 [n, 10] 的概率。"""
    # TODO: 这个地址没有指定版本
    address = "%s/v1/models/%s:predict" % (url, model_name)
    data = json.dumps({"signature_name": "call", "instances": images.tolist()})
    response = requests.post(address, data=data, timeout=30)
    response.raise_for_status()
    return np.array(response.json()["predictions"])
