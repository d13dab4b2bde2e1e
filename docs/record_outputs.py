"""Record every output the chapter shows, by running the code: `python docs/record_outputs.py`.

The chapter never contains a hand-typed output: each one is a file in docs/_outputs/ written here and
shown with `literalinclude`.  tests/test_docs.py calls `record()` again into a temporary folder and
compares the fresh files with the committed ones (see COMPARE there for what is compared how).

What runs, in order (about a minute on two cores, offline):
  1. code/zh/savedmodel/train_and_export.py and keras_sequential.py (MNIST_OFFLINE=1), exporting into a
     temporary folder;
  2. `python -m server --help`;
  3. one `python -m server --model_config_file=...` on a free loopback port, serving the two exported models
     (MLP with signature "call", MLP_sequential) and TF Serving's half_plus_two test model (two versions,
     labels stable/canary); the config file itself is recorded too;
  4. against it (REST, and gRPC on a second free port): client.py, client_grpc.py, client.js (when node and
     node_modules are there) and the REST examples of REST_EXAMPLES, each written as the curl command a
     reader would type, the HTTP status and the response;
  5. the troubleshooting section's outputs: a healthy start-up log (one model, CORS on), a second server on
     the same port, a relative --model_base_path, a version folder as --model_base_path, `saved_model_cli show`,
     and the error a Keras 3 model saved with tf.saved_model.save gives when run in a TF1 session (as TF
     Serving runs it) and this server's warning and response for that model, and client.py with http_proxy
     pointing at a closed port;
  6. two pictures into docs/_static/: the ten test digits with the served predictions, and the browser page
     (code/zh/savedmodel/web/) in headless Chromium with a real MNIST test digit drawn on it (when chromium
     is installed).
Servers are always stopped.  Paths of the temporary folder are written as the reader's paths
(/home/.../code/zh/savedmodel/...), the free port as 8501.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python docs/record_outputs.py`: the repository's packages
    sys.path.insert(0, str(ROOT))
from tests.serverproc import ServerProcess, free_port  # noqa: E402

DOCS = ROOT / "docs"
OUTPUTS = DOCS / "_outputs"
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "tf_serving_testdata"
HALF_PLUS_TWO = FIXTURES / "saved_model_half_plus_two_2_versions"

READER_SAVEDMODEL = "/home/.../code/zh/savedmodel"       # how the chapter writes the exported models' folder
READER_TESTDATA = "/home/.../tf_serving_testdata"          # and TF Serving's test models' folder
READER_PORT = 8501

MODEL_CONFIG = """model_config_list {
  config {
    name: "MLP"
    base_path: "%(savedmodel)s/saved_with_signature"
    model_platform: "tensorflow"
  }
  config {
    name: "MLP_sequential"
    base_path: "%(savedmodel)s/saved"
    model_platform: "tensorflow"
  }
  config {
    name: "half_plus_two"
    base_path: "%(testdata)s/saved_model_half_plus_two_2_versions"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
  }
}
"""

# name -> (method, path, JSON body or None).  Bodies are written compactly, as a reader would type them.
REST_EXAMPLES: dict[str, tuple[str, str, object]] = {
    "status_mlp": ("GET", "/v1/models/MLP", None),
    "metadata_mlp": ("GET", "/v1/models/MLP/metadata", None),
    "status_half_plus_two": ("GET", "/v1/models/half_plus_two", None),
    "predict_row": ("POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0], [2.0], [5.0]]}),
    "predict_columnar": ("POST", "/v1/models/half_plus_two:predict", {"inputs": {"x": [[1.0], [2.0], [5.0]]}}),
    "predict_version": ("POST", "/v1/models/half_plus_two/versions/123:predict", {"instances": [[1.0]]}),
    "predict_label": ("POST", "/v1/models/half_plus_two/labels/canary:predict", {"instances": [[1.0]]}),
    "predict_named": ("POST", "/v1/models/half_plus_two:predict",
                      {"signature_name": "regress_x2_to_y3", "instances": [{"inputs": [1.0]}, {"inputs": [2.0]}]}),
    "error_type": ("POST", "/v1/models/half_plus_two:predict", {"instances": [["one"]]}),
    "classify": ("POST", "/v1/models/half_plus_two:classify",
                 {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}, {"x": 4.0}]}),
    "regress": ("POST", "/v1/models/half_plus_two:regress",
                {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}, {"x": 1.0}]}),
    "predict_sequential": ("POST", "/v1/models/MLP_sequential:predict", {"instances": [[[[0.0]] * 28] * 28]}),
    "error_signature": ("POST", "/v1/models/MLP:predict", {"signature_name": "predict", "instances": [1.0]}),
    "error_shape": ("POST", "/v1/models/MLP:predict", {"signature_name": "call", "instances": [[1.0, 2.0]]}),
    "error_both": ("POST", "/v1/models/half_plus_two:predict", {"instances": [1.0], "inputs": [1.0]}),
    "error_model": ("GET", "/v1/models/CNN", None),
    "error_version": ("GET", "/v1/models/MLP/versions/7", None),
    "error_route": ("GET", "/v1/models/MLP:predict", None),
}


def _env() -> dict:
    return dict(os.environ, MNIST_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1",
                COLUMNS="100", PYTHONHASHSEED="0")


def _run(cmd: list[str], cwd: pathlib.Path, timeout: float = 300) -> str:
    """Run a command, return its stdout; fail loudly with its stderr when it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def _http(method: str, url: str, body: object = None, timeout: float = 30) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def curl_command(method: str, path: str, body: object) -> str:
    """The curl command a reader types for one example (against localhost:8501)."""
    url = f"http://localhost:{READER_PORT}{path}"
    if body is None:
        return f"$ curl {url}"
    text = json.dumps(body, separators=(", ", ": "))
    if len(text) > 200:  # e.g. a whole 28x28 image: too long to print, say what it is
        text = json.dumps(body, separators=(",", ":"))
        text = text[:60] + " ... " + text[-20:]
    return f"$ curl -d '{text}' {url}"


def record_rest(server: ServerProcess, outdir: pathlib.Path, names: list[str] | None = None) -> None:
    for name, (method, path, body) in REST_EXAMPLES.items():
        if names and name not in names:
            continue
        status, text = _http(method, server.url + path, body)
        lines = [curl_command(method, path, body), f"# HTTP {status}", text.rstrip("\n")]
        (outdir / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _fails(cmd: list[str], cwd: pathlib.Path, timeout: float = 120) -> str:
    """Run a command that must fail; return what it printed (stdout, then stderr)."""
    env = dict(_env(), PYTHONPATH=str(ROOT))  # `python -m server` from any folder
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode == 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} was expected to fail but exited with 0")
    text = done.stdout + done.stderr
    return text if text.endswith("\n") else text + "\n"


def server_lines(lines: list[str]) -> list[str]:
    """The server's own log lines: without TensorFlow's C++ start-up notes (oneDNN, CUDA) that vary by machine."""
    return [line for line in lines if not re.match(r"^([IWE]\d{4} |WARNING: All log messages)", line)]


def settled_log(server: ServerProcess, quiet: float = 1.5, timeout: float = 20) -> list[str]:
    """The server's log once no line has been added for `quiet` seconds (the HTTP server's own lines may
    arrive after the model is AVAILABLE)."""
    lines, since, deadline = server.log_lines(), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.2)
        now = server.log_lines()
        if now != lines:
            lines, since = now, time.monotonic()
    return lines


def saved_model_save_error(work: pathlib.Path) -> str:
    """A Keras 3 Sequential model saved with tf.saved_model.save, run as TF Serving runs it (a TF1 session):
    returns the error every request gets ("Could not find variable ...")."""
    script = f"""
import sys
import numpy as np
import tensorflow as tf
sys.path.insert(0, {str(SAVEDMODEL)!r})
import keras_sequential
model = keras_sequential.build_model()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
images = np.zeros((100, 28, 28, 1), np.float32)
model.fit(images, np.zeros(100, np.int32), batch_size=50, epochs=1, verbose=0)
tf.saved_model.save(model, {str(work / "saved_by_tf" / "1")!r})
with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], {str(work / "saved_by_tf" / "1")!r})
    (i,) = meta_graph.signature_def["serving_default"].inputs.values()
    (o,) = meta_graph.signature_def["serving_default"].outputs.values()
    try:
        session.run(o.name, {{i.name: images[:50]}})
    except tf.errors.OpError as error:
        print(type(error).__name__)
        print(error.message.strip())
"""
    text = _run([sys.executable, "-c", script], ROOT)
    lines = [line for line in text.splitlines() if line.strip() and line.strip() != "Graph execution error:"]
    return "\n".join(lines) + "\n"


def serve_saved_by_tf(work: pathlib.Path) -> str:
    """This server with the model saved_model_save_error() wrote: its warning at load, then a request for 10
    images (the signature's batch size was fixed at 50 by training)."""
    base = work / "saved_by_tf"
    with ServerProcess(["--model_name=MLP", f"--model_base_path={base}"], env=_env()) as server:
        server.wait_available("MLP")
        warnings = [line for line in server_lines(settled_log(server)) if " WARNING server.servable: " in line]
        body = {"instances": [[[[0.0]] * 28] * 28] * 10}
        status, text = _http("POST", server.url + "/v1/models/MLP:predict", body)
    command = f"$ python -m server --rest_api_port=8501 --model_name=MLP --model_base_path={base}"
    return "\n".join([command, *warnings, "...", curl_command("POST", "/v1/models/MLP:predict", body),
                      f"# HTTP {status}", text.rstrip("\n")]) + "\n"


def record_predictions_picture(server_url: str, path: pathlib.Path) -> None:
    """The first ten test digits, each with the digit the served model predicts and its true label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sys.path.insert(0, str(SAVEDMODEL))
    from mnist_loader import MNISTLoader

    loader = MNISTLoader(offline=True)
    status, text = _http("POST", server_url + "/v1/models/MLP:predict",
                         {"signature_name": "call", "instances": loader.test_data[:10].tolist()})
    assert status == 200, text
    predicted = [max(range(10), key=row.__getitem__) for row in json.loads(text)["predictions"]]
    from matplotlib import font_manager
    for font in sorted(pathlib.Path("/usr/share/fonts").glob("**/wqy-microhei.ttc")):  # Debian's fonts-wqy-microhei
        font_manager.fontManager.addfont(str(font))
    plt.rcParams["font.sans-serif"] = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC",
                                       "DejaVu Sans"]
    figure, axes = plt.subplots(1, 10, figsize=(10, 1.7))
    for ax, image, guess, label in zip(axes, loader.test_data[:10, :, :, 0], predicted, loader.test_label):
        ax.imshow(image, cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"预测 {guess}\n标签 {label}", fontsize=10, color="black" if guess == label else "red")
    figure.tight_layout()
    figure.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(figure)


def record_web_screenshot(server_url: str, path: pathlib.Path) -> None:
    """The browser page with the first MNIST test digit drawn on it, as the reader sees it."""
    sys.path.insert(0, str(SAVEDMODEL))
    from mnist_loader import MNISTLoader
    from tests import browser

    digit = MNISTLoader(offline=True).test_data[0, :, :, 0]
    with browser.StaticServer() as static, browser.Browser(width=720, height=560) as chrome:
        chrome.open(browser.page_url(static, server_url).replace("127.0.0.1", "localhost", 1))
        strokes = browser.strokes_of(digit)
        browser.draw(chrome, strokes)
        shown = browser.wait_result(chrome, len(strokes))
        if shown["error"]:
            raise RuntimeError(f"the browser page shows an error: {shown['status']}")
        # the address box shows the port a reader uses
        chrome.evaluate(f"document.getElementById('server').value = 'http://localhost:{READER_PORT}'")
        chrome.screenshot(path)


def node_ready() -> str | None:
    """None when client.js can run here, else the reason why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (SAVEDMODEL / "node_modules" / "pngjs").is_dir():
        return "code/zh/savedmodel/node_modules is missing (run: npm ci --prefix code/zh/savedmodel)"
    return None


def record(outdir: pathlib.Path, with_node: bool = True, static: pathlib.Path | None = None) -> list[str]:
    """Run everything and write the outputs into outdir (the pictures into static, when given); returns the
    names of the files written."""
    outdir.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="record-outputs-"))
    reader = lambda text: text.replace(str(work), READER_SAVEDMODEL)  # noqa: E731
    written = []

    def write(name: str, text: str) -> None:
        (outdir / name).write_text(text, encoding="utf-8")
        written.append(name)

    try:
        py = sys.executable
        write("train_and_export.txt", reader(_run(
            [py, "train_and_export.py", "--model_base_path", str(work / "saved_with_signature")], SAVEDMODEL)))
        write("keras_sequential.txt", reader(_run(
            [py, "keras_sequential.py", "--model_base_path", str(work / "saved")], SAVEDMODEL)))
        write("server_help.txt", _run([py, "-m", "server", "--help"], ROOT))

        config = work / "models.config"
        config.write_text(MODEL_CONFIG % {"savedmodel": work, "testdata": FIXTURES})
        write("models.config", MODEL_CONFIG % {"savedmodel": READER_SAVEDMODEL, "testdata": READER_TESTDATA})
        grpc_port = free_port()
        with ServerProcess([f"--model_config_file={config}", f"--port={grpc_port}"], env=_env()) as server:
            for name in ("MLP", "MLP_sequential", "half_plus_two"):
                server.wait_available(name, every_version=True)
            write("client_py.txt", _run([py, "client.py", "--port", str(server.port)], SAVEDMODEL))
            write("client_grpc.txt", _run([py, "client_grpc.py", "--port", str(grpc_port)], SAVEDMODEL))
            if with_node and node_ready() is None:
                write("client_js.txt", _run(["node", "client.js", "--port", str(server.port)], SAVEDMODEL))
            record_rest(server, outdir)
            written += [f"{name}.txt" for name in REST_EXAMPLES]
        record_troubleshooting(work, write, static)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


def record_troubleshooting(work: pathlib.Path, write, static: pathlib.Path | None) -> None:
    py = sys.executable
    base = work / "saved_with_signature"
    reader = lambda text: text.replace(str(work), READER_SAVEDMODEL)  # noqa: E731
    flags = ["--model_name=MLP", f"--model_base_path={base}", "--rest_api_enable_cors_support=true"]
    with ServerProcess(flags, env=_env()) as server:
        server.wait_available("MLP")
        at_port = lambda text: re.sub(rf"(?<=[:= ]){server.port}\b", str(READER_PORT), text)  # noqa: E731
        command = ["python", "-m", "server", *server.flags]
        log = server_lines(settled_log(server))
        write("startup_log.txt", at_port(reader("$ " + " ".join(command) + "\n" + "\n".join(log) + "\n")))
        # a second server on the same port
        second = _fails([py, "-m", "server", *server.flags], ROOT)
        write("error_port_in_use.txt", at_port(reader("$ " + " ".join(command) + "\n" + second)))
        if static is not None:
            record_predictions_picture(server.url, static / "predictions.png")
            if shutil.which("chromium") or shutil.which("chromium-browser"):
                record_web_screenshot(server.url, static / "web_page.png")
    relative = ["python", "-m", "server", "--rest_api_port=8501", "--model_name=MLP",
                "--model_base_path=saved_with_signature"]
    write("error_relative_path.txt", reader("$ cd /home/.../code/zh/savedmodel\n$ " + " ".join(relative) + "\n"
                                            + _fails([py, "-m", "server", *relative[3:]], work)))
    version = ["python", "-m", "server", "--rest_api_port=8501", "--model_name=MLP", f"--model_base_path={base}/1"]
    write("error_version_folder.txt", reader("$ " + " ".join(version) + "\n" + _fails([py, *version[1:]], ROOT)))
    cli = ["saved_model_cli", "show", "--dir", f"{base}/1", "--tag_set", "serve", "--signature_def", "call"]
    shown = _run([str(pathlib.Path(sys.executable).with_name("saved_model_cli")), *cli[1:]], ROOT)
    write("saved_model_cli.txt", reader("$ " + " ".join(cli) + "\n" + shown))
    write("error_could_not_find_variable.txt", saved_model_save_error(work))
    write("saved_by_tf_server.txt", reader(serve_saved_by_tf(work)))
    write("client_proxy.txt", client_behind_closed_proxy())


def client_behind_closed_proxy() -> str:
    """client.py with http_proxy set to a loopback port where nothing listens (shown as port 3128)."""
    proxy_port = free_port()
    env = {k: v for k, v in _env().items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["http_proxy"] = f"http://127.0.0.1:{proxy_port}"
    done = subprocess.run([sys.executable, "client.py"], cwd=SAVEDMODEL, env=env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode == 0:
        raise RuntimeError("client.py succeeded through a proxy that does not exist")
    text = "$ export http_proxy=http://127.0.0.1:3128\n$ python client.py\n" + done.stdout + done.stderr
    return text.replace(f"127.0.0.1:{proxy_port}", "127.0.0.1:3128")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default=str(OUTPUTS), help="where to write (default docs/_outputs)")
    args = parser.parse_args()
    reason = node_ready()
    if reason:
        print(f"error: cannot record the Node.js client's output: {reason}", file=sys.stderr)
        return 1
    names = record(pathlib.Path(args.outdir), static=DOCS / "_static")
    print(f"recorded {len(names)} outputs into {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
