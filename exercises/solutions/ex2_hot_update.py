"""习题 2 的参考答案：部署版本 2，观察热更新（不重启服务器）。"""
import json
import os
import shutil
import time

import numpy as np
import requests


def publish_version(export_dir, model_base_path, version):
    """把 export_dir 中的 SavedModel 发布为 model_base_path/<version>，返回新版本的目录。"""
    target = os.path.join(model_base_path, str(version))
    temp = os.path.join(model_base_path, ".tmp-%d" % version)  # 名字不是数字，服务器会忽略它
    shutil.rmtree(temp, ignore_errors=True)
    shutil.copytree(export_dir, temp)
    os.rename(temp, target)  # 同一文件系统上改名是原子操作：服务器看到的版本总是完整的
    return target


def wait_until_available(url, model_name, version, timeout=60):
    """等到模型 model_name 的版本 version 可用，返回此时的模型状态（JSON）。"""
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get("%s/v1/models/%s" % (url, model_name), timeout=10).json()
        for item in status.get("model_version_status", []):
            if item["version"] == str(version) and item["state"] == "AVAILABLE":
                return status
        if time.monotonic() > deadline:
            raise TimeoutError("%d 秒后版本 %s 仍不可用：%s" % (timeout, version, status))
        time.sleep(0.2)


def predict_version(url, model_name, version, images):
    """用模型的版本 version 预测 images，返回 [n, 10] 的概率。"""
    address = "%s/v1/models/%s/versions/%d:predict" % (url, model_name, version)
    data = json.dumps({"signature_name": "call", "instances": images.tolist()})
    response = requests.post(address, data=data, timeout=30)
    response.raise_for_status()
    return np.array(response.json()["predictions"])
