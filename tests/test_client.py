"""The handbook's Python client (code/zh/savedmodel/client.py) against a small stand-in that answers like
TF Serving's REST API: request format, printed output, and the one-sentence errors.

The end-to-end test against the project's real server lives with the server's tests."""
import http.server
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from .serverproc import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
sys.path.insert(0, str(SAVEDMODEL))

from mnist_loader import MNISTLoader  # noqa: E402

_spec = importlib.util.spec_from_file_location("zh_savedmodel_client", SAVEDMODEL / "client.py")
client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(client)


PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    """Each test starts without the machine's proxy settings; the proxy tests set their own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def loader():
    return MNISTLoader()


@pytest.fixture(scope="module")
def test_labels(loader):
    return loader.test_label


class FakeServing:
    """Answers POSTs with a function of (path, body) -> (status, body bytes, content type)."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, self.headers.get("Content-Type"), body))
                status, payload, content_type = answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that gave up (the time-out test): socketserver would print a traceback
                    # into whichever later test is capturing stderr

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def json_answer(status, obj):
    return status, json.dumps(obj).encode(), "application/json"


def one_hot_for(labels):
    """A fake model: 'predicts' the given digits as probability rows."""
    def answer(path, body):
        instances = json.loads(body)["instances"]
        rows = np.full((len(instances), 10), 0.01)
        rows[np.arange(len(instances)), labels[:len(instances)]] = 0.91
        return json_answer(200, {"predictions": rows.tolist()})
    return answer


def test_sends_the_handbook_request_and_prints_predictions_over_labels(loader, test_labels, capsys):
    wrong = (test_labels[:10] + 1) % 10  # distinguishable from the true labels
    with FakeServing(one_hot_for(wrong)) as fake:
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port)])
    assert code == 0
    (path, content_type, body), = fake.requests
    assert path == "/v1/models/MLP:predict"
    assert content_type == "application/json"
    request = json.loads(body)
    assert set(request) == {"signature_name", "instances"}
    assert request["signature_name"] == "call"
    instances = np.array(request["instances"])
    assert instances.shape == (10, 28, 28, 1)
    assert instances.min() == 0.0 and instances.max() == 1.0
    np.testing.assert_allclose(instances, loader.test_data[:10], rtol=1e-6)
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == str(wrong)
    assert out[-1] == str(test_labels[:10])


def test_model_and_signature_names_are_arguments(test_labels, capsys):
    with FakeServing(one_hot_for(test_labels[:10])) as fake:
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port),
                            "--model_name", "mnist", "--signature_name", "serving_default"])
    assert code == 0
    (path, _, body), = fake.requests
    assert path == "/v1/models/mnist:predict"
    assert json.loads(body)["signature_name"] == "serving_default"
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == out[-1] == str(test_labels[:10])


def test_server_not_running_gives_one_sentence(capsys):
    port = free_port()
    assert client.main(["--host", "127.0.0.1", "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.err == "无法连接到 http://127.0.0.1:%d/v1/models/MLP:predict，请先启动服务器。\n" % port
    assert "Traceback" not in captured.out + captured.err


def test_error_answer_prints_the_servers_message(capsys):
    message = 'Serving signature name: "call" not found in signature def'
    with FakeServing(lambda path, body: json_answer(400, {"error": message})) as fake:
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port)])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == "服务器返回错误（HTTP 400）：%s\n" % message
    assert "[" not in captured.out  # no predictions printed


def test_error_answer_that_is_not_json(capsys):
    with FakeServing(lambda path, body: (502, b"<html>Bad Gateway</html>", "text/html")) as fake:
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port)])
    assert code == 1
    assert capsys.readouterr().err == "服务器返回错误（HTTP 502）：<html>Bad Gateway</html>\n"


def test_slow_server_times_out_with_one_sentence(capsys):
    def slow(path, body):
        time.sleep(2)
        return json_answer(200, {"predictions": []})
    with FakeServing(slow) as fake:
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port), "--timeout", "0.3"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("服务器在 0.3 秒内没有响应") and err.count("\n") == 1


def test_script_runs_from_another_folder_without_traceback(tmp_path):
    port = free_port()
    env = dict(os.environ, MNIST_OFFLINE="1")
    result = subprocess.run([sys.executable, str(SAVEDMODEL / "client.py"), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr == "无法连接到 http://127.0.0.1:%d/v1/models/MLP:predict，请先启动服务器。\n" % port
    assert result.stdout.startswith("数据来源")


# ---------------------------------------------------------------- a proxy in the way
# With http_proxy set, requests sends even a request for 127.0.0.1 to the proxy (unless no_proxy names the
# host); a proxy that cannot be reached raises ProxyError, a subclass of ConnectionError.


def test_unreachable_proxy_is_named_with_the_no_proxy_fix(monkeypatch, capsys, test_labels):
    with FakeServing(one_hot_for(test_labels[:10])) as fake:  # the server runs, the proxy is in the way
        proxy_port = free_port()  # nothing listens there (chosen once the fake server has its port)
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % proxy_port)
        code = client.main(["--host", "127.0.0.1", "--port", str(fake.port)])
        assert fake.requests == []
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("请求被发给了代理 http://127.0.0.1:%d（环境变量 http_proxy），没能到达 "
                          "http://127.0.0.1:%d/v1/models/MLP:predict" % (proxy_port, fake.port))
    assert "no_proxy=localhost,127.0.0.1" in err
    assert "请先启动服务器" not in err

    # the fix the sentence gives works: the same request, with no_proxy, reaches the server
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    with FakeServing(one_hot_for(test_labels[:10])) as fake:
        assert client.main(["--host", "127.0.0.1", "--port", str(fake.port)]) == 0
        assert len(fake.requests) == 1


def test_unreachable_proxy_from_a_fresh_process(tmp_path):
    proxy_port, server_port = free_port(), free_port()
    env = dict(os.environ, MNIST_OFFLINE="1", HTTP_PROXY="http://127.0.0.1:%d" % proxy_port)
    for name in PROXY_VARIABLES:
        if name != "HTTP_PROXY":
            env.pop(name, None)
    result = subprocess.run([sys.executable, str(SAVEDMODEL / "client.py"), "--host", "127.0.0.1",
                             "--port", str(server_port)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("请求被发给了代理 http://127.0.0.1:%d" % proxy_port), result.stderr
    assert result.stderr.count("\n") == 1


def test_error_answer_through_a_proxy_says_so(monkeypatch, capsys):
    # a proxy that answers itself (here: the stand-in plays the proxy and refuses the request)
    with FakeServing(lambda path, body: (403, b"Forbidden by proxy", "text/plain")) as proxy:
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % proxy.port)
        code = client.main(["--host", "127.0.0.1", "--port", str(free_port())])
        (path, _, _), = proxy.requests
    assert code == 1
    assert path.startswith("http://127.0.0.1:")  # a proxy gets the absolute URL
    err = capsys.readouterr().err
    assert err == ("服务器返回错误（HTTP 403）：Forbidden by proxy（请求经过了代理 http://127.0.0.1:%d，"
                   "访问本机的服务器请设置 no_proxy=localhost,127.0.0.1）\n" % proxy.port)
