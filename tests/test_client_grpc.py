"""The handbook's gRPC client (code/zh/savedmodel/client_grpc.py) run as a student runs it, against the real
server: it prints what the REST client (client.py) prints for the same model."""
import os
import subprocess
import sys

import pytest

from .conftest import SAVEDMODEL
from .serverproc import free_port

pytestmark = pytest.mark.slow


def run(script, *args):
    env = dict(os.environ, MNIST_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(SAVEDMODEL / script), "--host", "127.0.0.1", *args],
                          cwd=SAVEDMODEL, env=env, capture_output=True, text=True, timeout=300)


def last_line(text):
    return text.rstrip("\n").splitlines()[-1]


def test_prints_what_the_rest_client_prints(grpc_served):
    grpc_port = grpc_served.server.grpc_port
    by_grpc = run("client_grpc.py", "--port", str(grpc_port))
    by_rest = run("client.py", "--port", str(grpc_served.server.port))
    assert by_grpc.returncode == 0, by_grpc.stderr
    assert by_rest.returncode == 0, by_rest.stderr
    predicted, labels = by_grpc.stdout.splitlines()[-2:]
    assert predicted.startswith("[") and labels.startswith("[")
    assert by_grpc.stdout.splitlines()[-2:] == by_rest.stdout.splitlines()[-2:]
    assert "Traceback" not in by_grpc.stderr


def test_server_errors_are_one_sentence(grpc_served):
    result = run("client_grpc.py", "--port", str(grpc_served.server.grpc_port), "--model_name", "nope")
    assert result.returncode == 1
    # The last line (TensorFlow's own start-up lines may come before it).
    assert last_line(result.stderr).startswith("服务器返回错误（NOT_FOUND）：")
    assert "Traceback" not in result.stderr


def test_server_not_running_is_one_sentence():
    port = free_port()
    result = run("client_grpc.py", "--port", str(port), "--timeout", "5")
    assert result.returncode == 1
    assert last_line(result.stderr) == "无法连接到 127.0.0.1:%d，请先启动服务器。" % port
    assert "Traceback" not in result.stderr
