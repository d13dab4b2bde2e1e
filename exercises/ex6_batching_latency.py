"""习题 6：比较开启与不开启批处理（batching）时的延迟。

开启批处理（--enable_batching）后，服务器把同时到达的多个请求合并成一批，只调用一次模型。
这个脚本先后启动两次服务器（不开启、开启批处理），各用 concurrency 个线程发送单张图像的请求，
打印两种情况下延迟的中位数 p50。请完成：
1. write_batching_parameters：写出批处理参数文件（protobuf 文本格式，字段见 TensorFlow Serving 的
   BatchingParameters：max_batch_size、batch_timeout_micros、max_enqueued_batches、num_batch_threads）；
2. server_flags：batching 为 True 时加上 --enable_batching 与 --batching_parameters_file=<文件>；
3. main：两种情况都测量，打印两个 p50。
运行（在仓库根目录，先用 train_and_export.py 导出模型）：
    python exercises/ex6_batching_latency.py --num_requests 200 --concurrency 8
检查：
    python -m pytest -m exercise exercises/test_ex6_batching_latency.py
"""
import argparse
import concurrent.futures
import contextlib
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

# 仓库根目录：向上找到含有 server/ 的目录（python -m server 要在这里运行）
ROOT = next(p for p in pathlib.Path(__file__).resolve().parents if (p / "server" / "__main__.py").is_file())


def write_batching_parameters(path):
    # TODO: 写出 BatchingParameters 的文本，例如一行 "max_batch_size { value: 32 }"
    raise NotImplementedError("把批处理参数写到文件 path 中")


def server_flags(model_base_path, port, batching, workdir):
    flags = ["--rest_api_port=%d" % port, "--rest_api_host=127.0.0.1",
             "--model_name=MLP", "--model_base_path=%s" % model_base_path]
    # TODO: batching 为 True 时，用 write_batching_parameters 在 workdir 中写出参数文件，并加上两个参数
    return flags


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(flags, timeout=120):
    """启动 python -m server，等到模型 MLP 可用后给出它的地址；离开 with 时停止服务器。"""
    port = next(int(f.split("=")[1]) for f in flags if f.startswith("--rest_api_port="))
    url = "http://127.0.0.1:%d" % port
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "server", *flags], cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError("服务器退出了：\n" + log.read().decode(errors="replace")[-2000:])
            try:
                status = requests.get(url + "/v1/models/MLP", timeout=2).json()
                if any(s["state"] == "AVAILABLE" for s in status.get("model_version_status", [])):
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("%d 秒后模型仍不可用" % timeout)
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def measure_p50(url, image, num_requests, concurrency):
    """concurrency 个线程一共发 num_requests 个单张图像的请求，返回延迟的中位数（毫秒）。"""
    address = url + "/v1/models/MLP:predict"
    data = json.dumps({"signature_name": "call", "instances": [image.tolist()]})

    def one_request(_):
        start = time.perf_counter()
        response = requests.post(address, data=data, timeout=30)
        response.raise_for_status()
        return (time.perf_counter() - start) * 1000

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one_request, range(concurrency)))  # 预热：不计入结果
        latencies = list(pool.map(one_request, range(num_requests)))
    return statistics.median(latencies)


def main(argv=None):
    parser = argparse.ArgumentParser(description="比较开启与不开启批处理时的延迟（p50）")
    parser.add_argument("--model_base_path", default=str(ROOT / "code" / "zh" / "savedmodel" / "saved_with_signature"))
    parser.add_argument("--num_requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    image = np.zeros([28, 28, 1], dtype=np.float32)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for batching in (False,):  # TODO: 也测量开启批处理的情况
            flags = server_flags(os.path.abspath(args.model_base_path), free_port(), batching, workdir)
            with serve(flags) as url:
                results["with_batching" if batching else "without_batching"] = \
                    measure_p50(url, image, args.num_requests, args.concurrency)
    print("不开启批处理：p50 = %.1f ms" % results["without_batching"])
    # TODO: 打印开启批处理时的 p50
    return results


if __name__ == "__main__":
    main()
