"""Python 客户端：把前 10 张测试图像发给 TensorFlow Serving 的 REST API，打印预测的数字与真实标签。

运行前先启动服务器（模型名 MLP，模型目录为 train_and_export.py 导出的 saved_with_signature），然后：
    python client.py
    python client.py --host 127.0.0.1 --port 8501 --model_name MLP --signature_name call
"""
import argparse
import json
import sys

import numpy as np
import requests

from mnist_loader import MNISTLoader


def main(argv=None):
    parser = argparse.ArgumentParser(description="向 TensorFlow Serving 发送 MNIST 图像并打印预测结果")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--model_name", default="MLP")
    parser.add_argument("--signature_name", default="call")
    parser.add_argument("--timeout", type=float, default=30, help="等待服务器响应的最长秒数")
    args = parser.parse_args(argv)
    url = "http://%s:%d/v1/models/%s:predict" % (args.host, args.port, args.model_name)

    data_loader = MNISTLoader()
    data = json.dumps({
        "signature_name": args.signature_name,
        "instances": data_loader.test_data[0:10].tolist()
    })
    headers = {"content-type": "application/json"}
    # 设置了 http_proxy 时，requests 会把请求交给代理（no_proxy 中列出的地址除外）
    proxy = requests.utils.get_environ_proxies(url).get("http")
    try:
        json_response = requests.post(url, data=data, headers=headers, timeout=args.timeout)
    except requests.exceptions.ProxyError:  # 它是 ConnectionError 的子类，所以要先捕获
        print("请求被发给了代理 %s（环境变量 http_proxy），没能到达 %s：访问本机的服务器不需要代理，"
              "请设置 no_proxy=localhost,127.0.0.1 后再试。" % (proxy, url), file=sys.stderr)
        return 1
    except requests.exceptions.ConnectionError:
        print("无法连接到 %s，请先启动服务器。" % url, file=sys.stderr)
        return 1
    except requests.exceptions.Timeout:
        print("服务器在 %g 秒内没有响应：%s" % (args.timeout, url), file=sys.stderr)
        return 1
    try:
        answer = json_response.json()
    except ValueError:  # 响应不是 JSON（例如地址指向了别的服务）
        answer = {}
    if json_response.status_code != 200 or "predictions" not in answer:
        # TensorFlow Serving 出错时返回 {"error": "..."}
        message = answer.get("error") if isinstance(answer, dict) else None
        via_proxy = ("（请求经过了代理 %s，访问本机的服务器请设置 no_proxy=localhost,127.0.0.1）" % proxy
                     if proxy else "")
        print("服务器返回错误（HTTP %d）：%s%s" % (json_response.status_code,
                                             message or json_response.text[:500], via_proxy), file=sys.stderr)
        return 1
    predictions = np.array(answer['predictions'])
    print(np.argmax(predictions, axis=-1))
    print(data_loader.test_label[0:10])
    return 0


if __name__ == "__main__":
    sys.exit(main())
