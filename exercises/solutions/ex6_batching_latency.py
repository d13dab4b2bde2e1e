"""习题 6 的参考答案：比较开启与不开启批处理（batching）时的延迟。

运行（在仓库根目录，先用 train_and_export.py 导出模型）：
    python exercises/solutions/ex6_batching_latency.py --num_requests 200 --concurrency 8
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
    # BatchingParameters 的 protobuf 文本格式，与 TensorFlow Serving 的 --batching_parameters_file 相同
    with open(path, "w") as f:
        f.write("max_batch_size { value: 32 }\n"          # 一批最多 32 个样本
                "batch_timeout_micros { value: 2000 }\n"  # 一批最多等 2 毫秒就开始运行
                "max_enqueued_batches { value: 100 }\n"   # 排队的批次太多时直接拒绝新请求
                "num_batch_threads { value: 2 }\n")       # 同时运行的批次数


def server_flags(model_base_path, port, batching, workdir):
    flags = ["--rest_api_port=%d" % port, "--rest_api_host=127.0.0.1",
             "--model_name=MLP", "--model_base_path=%s" % model_base_path]
    if batching:
        path = os.path.join(workdir, "batching.config")
        write_batching_parameters(path)
        flags += ["--enable_batching", "--batching_parameters_file=%s" % path]
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
        for batching in (False, True):
            flags = server_flags(os.path.abspath(args.model_base_path), free_port(), batching, workdir)
            with serve(flags) as url:
                results["with_batching" if batching else "without_batching"] = \
                    measure_p50(url, image, args.num_requests, args.concurrency)
    print("不开启批处理：p50 = %.1f ms" % results["without_batching"])
    print("开启批处理：p50 = %.1f ms" % results["with_batching"])
    return results


if __name__ == "__main__":
    main()
