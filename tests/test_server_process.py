"""`python -m server` as a real process: flags, start-up failures, the contract over HTTP on loopback."""
import socket
import subprocess
import sys
import time

import pytest
import requests

from .conftest import TESTDATA
from .serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.slow


def run_cli(*flags, timeout=60):
    return subprocess.run([sys.executable, "-m", "server", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# -- the command line ---------------------------------------------------------------------

def test_help_documents_every_flag():
    out = run_cli("--help").stdout
    for flag in ("--rest_api_port", "--model_name", "--model_base_path", "--model_config_file",
                 "--model_config_file_poll_wait_seconds", "--file_system_poll_wait_seconds", "--enable_batching",
                 "--batching_parameters_file", "--rest_api_num_threads", "--rest_api_timeout_in_ms", "--port",
                 "--monitoring_config_file", "--workers"):
        assert flag in out, flag


@pytest.mark.parametrize("flags,needle", [
    (["--rest_api_port=8501", "--model_name=m", "--model_base_path=/no/such/dir"], "Could not find base path"),
    (["--model_name=m", "--model_base_path=/tmp", "--port=0"],
     "At least one of --port, --grpc_socket_path or --rest_api_port must be set"),
    (["--rest_api_port=abc", "--model_base_path=/tmp"], "--rest_api_port"),
    (["--rest_api_port=8501", "--port=70000", "--model_base_path=/tmp"], "--port"),
    (["--rest_api_port=8501", "--ssl_config_file=x", f"--model_base_path={TESTDATA / 'saved_model_half_plus_two_cpu'}"],
     "Cannot read SSL config (--ssl_config_file) file 'x'"),
    (["--rest_api_port=8501", "--no_such_flag=1", "--model_base_path=/tmp"], "--no_such_flag"),
    (["--rest_api_port=8501", "--model_config_file=/no/such/file"], "Cannot read model config file"),
    # Only inter-op takes a negative count (TensorFlow: every op in the caller's thread).
    (["--rest_api_port=8501", "--tensorflow_intra_op_parallelism=-1", "--model_base_path=/tmp"],
     "must not be negative"),
])
def test_bad_flags_exit_nonzero_with_one_clear_message(flags, needle):
    r = run_cli(*flags)
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_empty_base_path_is_refused(tmp_path):
    (tmp_path / "not_a_version").mkdir()
    r = run_cli("--rest_api_port=8501", "--model_name=m", f"--model_base_path={tmp_path}")
    assert r.returncode != 0 and "No versions of servable m found" in r.stderr


def test_port_in_use_is_refused(testdata):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli(f"--rest_api_port={port}", "--rest_api_host=127.0.0.1", "--model_name=m",
                    f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}")
    assert r.returncode != 0 and f"port {port} is already in use" in r.stderr


def test_invalid_config_file_is_refused(tmp_path):
    cfg = tmp_path / "bad.config"
    cfg.write_text("model_config_list { config { nme: 'x' } }")
    r = run_cli("--rest_api_port=8501", f"--model_config_file={cfg}")
    assert r.returncode != 0 and "Invalid ModelServerConfig" in r.stderr and "Traceback" not in r.stderr


# -- a served model over HTTP ---------------------------------------------------------------

@pytest.fixture(scope="module")
def served(testdata, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "models.config"
    cfg.write_text(f"""
model_config_list {{
  config {{ name: "half_plus_two" base_path: "{testdata}/saved_model_half_plus_two_2_versions"
           model_platform: "tensorflow" version_labels {{ key: "stable" value: 124 }} }}
  config {{ name: "half_plus_three" base_path: "{testdata}/saved_model_half_plus_three"
           model_platform: "tensorflow" }}
}}""")
    # A version that fails to load is reported at once (tensorflow_model_server's default retries 5 times).
    with ServerProcess([f"--model_config_file={cfg}", "--max_num_load_retries=0"]) as server:
        server.wait_available("half_plus_two")
        yield server


def test_http_predict_classify_regress(served):
    u = served.url
    r = requests.post(f"{u}/v1/models/half_plus_two:predict", data=b'{"instances": [[1.0], [3.0]]}')
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"predictions": [[2.5], [3.5]]}
    r = requests.post(f"{u}/v1/models/half_plus_two/labels/stable:regress",
                      json={"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]})
    assert r.json() == {"results": [42.0]}
    r = requests.post(f"{u}/v1/models/half_plus_two:classify",
                      json={"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]})
    assert r.json() == {"results": [[["", 12.0]]]}


def test_http_half_plus_three_answers_as_tf_serving(served):
    # half_plus_three's signature contradicts its graph (x declared a scalar, x:0 is [?, 1]); TF Serving
    # serves it and its integration test expects 4.0 for x = 2.0 sent with shape [1]: so does this server.
    deadline = time.monotonic() + 60
    while True:
        doc = requests.get(f"{served.url}/v1/models/half_plus_three").json()
        if doc.get("model_version_status", [{}])[0].get("state") in ("AVAILABLE", "END") or (
                time.monotonic() > deadline):
            break
        time.sleep(0.1)
    (status,) = doc["model_version_status"]
    assert status["state"] == "AVAILABLE", status
    r = requests.post(f"{served.url}/v1/models/half_plus_three:predict", json={"inputs": {"x": [2.0]}})
    assert (r.status_code, r.json()) == (200, {"outputs": [4.0]})
    r = requests.post(f"{served.url}/v1/models/half_plus_two:predict", json={"instances": [[1.0]]})
    assert r.json() == {"predictions": [[2.5]]}


def test_http_status_and_metadata(served):
    r = requests.get(f"{served.url}/v1/models/half_plus_two")
    assert r.status_code == 200
    assert r.json()["model_version_status"][0] == {
        "version": "124", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    r = requests.get(f"{served.url}/v1/models/half_plus_two/metadata")
    assert r.json()["model_spec"]["version"] == "124"


def test_http_errors_are_json(served):
    u = served.url
    for method, path, body, code in [
        ("POST", "/v1/models/half_plus_two:predict", b"not json", 400),
        ("POST", "/v1/models/nope:predict", b'{"instances": [[1.0]]}', 404),
        ("GET", "/v1/models/half_plus_two:predict", b"", 400),
        ("GET", "/v1/models", b"", 400),
        ("GET", "/elsewhere", b"", 404),
    ]:
        r = requests.request(method, u + path, data=body)
        assert r.status_code == code, (method, path, r.text)
        assert r.headers["Content-Type"] == "application/json"
        assert set(r.json()) == {"error"}


def test_loaded_versions_are_logged(served):
    line = served.wait_log("Successfully loaded servable version half_plus_two 124")
    assert "saved_model_half_plus_two_2_versions" in line


def test_log_has_no_gpu_probe_noise_on_a_machine_without_a_gpu(served):
    from server.logsetup import has_nvidia_driver
    if has_nvidia_driver():
        pytest.skip("on a machine with an NVIDIA driver TensorFlow's GPU messages are kept")
    served.wait_log("Successfully loaded servable version half_plus_two")   # the worker has started TensorFlow
    log = "\n".join(served.log_lines())
    assert "Could not find cuda drivers" not in log and "failed call to cuInit" not in log, log
    assert "Loading servable version half_plus_three" in log   # the server's own lines all pass
