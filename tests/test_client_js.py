"""The Node.js client (code/zh/savedmodel/client.js) and the picture it reads (digit_5.png).

The client runs with `node` against the project's real server (`python -m server` on a free loopback port)
serving a freshly trained MLP; the digit it prints must be the one the in-process model predicts for the
same 28x28 image.  Skips, saying why, when node is not installed or its dependencies cannot be installed.
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from .serverproc import ServerProcess

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
sys.path.insert(0, str(SAVEDMODEL))

from mnist_loader import MNISTLoader  # noqa: E402

GUESS = re.compile(r"^我们猜这个数字是(\d)，概率是([\d.e+-]+)$")


@pytest.fixture(scope="module")
def node():
    """The node executable, with pngjs installed under code/zh/savedmodel/node_modules."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (node not on PATH): the Node.js client cannot be run")
    if not (SAVEDMODEL / "node_modules" / "pngjs").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("code/zh/savedmodel/node_modules is missing and npm is not installed to run `npm ci`")
        try:
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SAVEDMODEL,
                                  capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip("code/zh/savedmodel/node_modules is missing and `npm ci` did not finish in 180 s")
        if done.returncode != 0:
            pytest.skip("code/zh/savedmodel/node_modules is missing and `npm ci` failed: "
                        + (done.stderr.strip().splitlines() or ["(no message)"])[-1])
    return node


def run_node(node, *args, timeout=60):
    return subprocess.run([node, *args], cwd=SAVEDMODEL, capture_output=True, text=True, timeout=timeout)


def client_image(node, png="digit_5.png"):
    """The 28x28 grey image client.js sends, from its own loadGreyImage."""
    script = ("const {loadGreyImage} = require('./client.js');"
              f"console.log(JSON.stringify(loadGreyImage({json.dumps(png)})))")
    done = run_node(node, "-e", script)
    assert done.returncode == 0, done.stderr
    return np.array(json.loads(done.stdout), dtype=np.float32)


@pytest.fixture(scope="module")
def mnist():
    return MNISTLoader(offline=True)


def test_digit_png_is_a_real_mnist_test_digit_scaled_up(mnist, tmp_path):
    import make_digit_png

    committed = matplotlib.image.imread(SAVEDMODEL / "digit_5.png")[:, :, 0]
    assert committed.shape == (280, 280)
    image, index = make_digit_png.first_test_image(mnist, 5)
    assert mnist.test_label[index] == 5
    # each MNIST pixel is a 10x10 block of one grey level (8-bit PNG: within 1/255)
    np.testing.assert_allclose(committed, np.kron(image, np.ones((10, 10))), atol=1.01 / 255)
    # the script makes the same picture again
    make_digit_png.main(["--output", str(tmp_path / "again.png")])
    np.testing.assert_array_equal(matplotlib.image.imread(tmp_path / "again.png"),
                                  matplotlib.image.imread(SAVEDMODEL / "digit_5.png"))


def test_client_resizes_the_png_back_to_the_mnist_image(node, mnist):
    image = client_image(node)
    assert image.shape == (28, 28)
    original, _ = __import__("make_digit_png").first_test_image(mnist, 5)
    np.testing.assert_allclose(image, original, atol=1.01 / 255)


def test_client_says_one_sentence_when_no_server(node):
    from .serverproc import free_port

    done = run_node(node, "client.js", "--port", str(free_port()), "--host", "127.0.0.1")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "无法连接到" in done.stderr and "请先启动服务器" in done.stderr
    assert "at " not in done.stderr  # no stack trace


def test_client_rejects_unknown_arguments(node):
    done = run_node(node, "client.js", "--colour", "red")
    assert done.returncode == 1
    assert "不认识的参数：--colour" in done.stderr


@pytest.mark.slow
def test_client_against_the_real_server_guesses_what_the_model_predicts(node, mnist, tmp_path):
    import tensorflow as tf

    import train_and_export

    # a short training run is enough: the check is that the served answer equals the in-process one
    model, accuracy, path = train_and_export.main(
        ["--model_base_path", str(tmp_path / "saved_with_signature"), "--num_epochs", "3"])
    image = client_image(node)
    expected = model(tf.constant(image.reshape(1, 28, 28, 1))).numpy()[0]

    with ServerProcess(["--model_name=MLP", f"--model_base_path={tmp_path / 'saved_with_signature'}"]) as server:
        server.wait_available("MLP")
        done = run_node(node, "client.js", "--host", "127.0.0.1", "--port", str(server.port))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 29, done.stdout
    art = np.array([line.split(" ") for line in lines[:28]])
    np.testing.assert_array_equal(art == "#", image > 0.3)  # ASCII art: '#' for strokes, '.' elsewhere
    digit, probability = GUESS.match(lines[28]).groups()
    assert int(digit) == int(np.argmax(expected))
    assert float(probability) == pytest.approx(float(np.max(expected)), abs=1e-5)


# ---------------------------------------------------------------- a proxy in the way
# Node.js's fetch ignores http_proxy unless NODE_USE_ENV_PROXY=1 and the Node.js release supports it; then the
# client names the unreachable proxy and the no_proxy fix instead of saying the server is down.

def node_uses_env_proxy(node, proxy_port, target_port):
    """Whether this node sends fetch() through http_proxy with NODE_USE_ENV_PROXY=1: the refused port says."""
    import os

    script = (f"fetch('http://127.0.0.1:{target_port}/').catch(error => "
              "console.log(error.cause && error.cause.port))")
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(http_proxy=f"http://127.0.0.1:{proxy_port}", NODE_USE_ENV_PROXY="1")
    done = subprocess.run([node, "-e", script], cwd=SAVEDMODEL, env=env, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() == str(proxy_port)


def test_unreachable_proxy_error_is_named_with_the_no_proxy_fix(node):
    from .serverproc import free_port

    proxy_port, server_port = free_port(), free_port()
    # the error fetch raises when the proxy's port is closed, then the sentence the client makes of it
    script = (
        "const {connectionErrorMessage, proxyFor} = require('./client.js');"
        f"const env = {{http_proxy: 'http://127.0.0.1:{proxy_port}'}};"
        f"const url = 'http://localhost:{server_port}/v1/models/MLP:predict';"
        f"fetch('http://127.0.0.1:{proxy_port}/').catch(error => {{"
        "  console.log(connectionErrorMessage(error, url, env));"
        "  console.log(connectionErrorMessage(error, url, {...env, no_proxy: 'localhost,127.0.0.1'}));"
        "  console.log(proxyFor(url, {...env, NO_PROXY: '127.0.0.1, localhost'}));"
        "})")
    done = run_node(node, "-e", script)
    assert done.returncode == 0, done.stderr
    proxied, direct, excluded = done.stdout.splitlines()
    assert proxied == (f"请求被发给了代理 http://127.0.0.1:{proxy_port}（环境变量 http_proxy），没能到达 "
                       f"http://localhost:{server_port}/v1/models/MLP:predict：访问本机的服务器不需要代理，"
                       "请设置 no_proxy=localhost,127.0.0.1 后再试。")
    assert direct == f"无法连接到 http://localhost:{server_port}/v1/models/MLP:predict，请先启动服务器。"
    assert excluded == "null"


def test_client_with_an_unreachable_proxy_set(node):
    """The whole script: http_proxy at a closed port, the server's port closed too."""
    import os

    from .serverproc import free_port

    proxy_port, server_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env.update(http_proxy=f"http://127.0.0.1:{proxy_port}", NODE_USE_ENV_PROXY="1")
    done = subprocess.run([node, "client.js", "--host", "127.0.0.1", "--port", str(server_port)],
                          cwd=SAVEDMODEL, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "at " not in done.stderr, done.stderr
    if node_uses_env_proxy(node, proxy_port, server_port):
        assert done.stderr.startswith(f"请求被发给了代理 http://127.0.0.1:{proxy_port}"), done.stderr
    else:  # this Node.js ignores http_proxy: the request went to the (closed) server port itself
        assert done.stderr.startswith("无法连接到 http://127.0.0.1:%d/" % server_port), done.stderr
