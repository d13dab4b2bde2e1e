"""server/xla.py: XLA compilation off in a serving process unless --xla_cpu_compilation_enabled (or
--xla_gpu_compilation_enabled) is given, as tensorflow_model_server's main() sets it."""
import os
import subprocess
import sys

import pytest
import requests

from .serverproc import ROOT, ServerProcess

EXPORT = """
import sys
import tensorflow as tf

class M(tf.Module):
    def __init__(self):
        self.w = tf.Variable([[2.0], [3.0]])

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def jit(self, x):
        return {"y": tf.matmul(x, self.w) + 1.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def plain(self, x):
        return {"y": tf.matmul(x, self.w) + 1.0}

m = M()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.jit, "plain": m.plain})
"""


@pytest.fixture(scope="module")
def jit_model(tmp_path_factory):
    """A SavedModel whose default signature must be compiled with XLA (jit_compile=True) and whose
    "plain" signature computes the same without XLA. Exported in a subprocess, as a user would."""
    base = tmp_path_factory.mktemp("jit") / "jit"
    subprocess.run([sys.executable, "-c", EXPORT, str(base / "1")], check=True, capture_output=True, timeout=300)
    return base


def predict(server, signature):
    return requests.post(f"{server.url}/v1/models/jit:predict", timeout=60,
                         json={"signature_name": signature, "instances": [[1.0, 1.0], [0.0, 2.0]]})


@pytest.mark.slow
@pytest.mark.parametrize("flag", [None, "--xla_cpu_compilation_enabled", "--xla_gpu_compilation_enabled"])
def test_xla_compilation_only_with_the_flag(jit_model, flag):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    with ServerProcess(["--model_name=jit", f"--model_base_path={jit_model}", *([flag] if flag else [])],
                       env=env) as server:
        server.wait_available("jit")
        plain = predict(server, "plain")
        assert plain.status_code == 200 and plain.json() == {"predictions": [[6.0], [7.0]]}
        jit = predict(server, "serving_default")
        if flag is None:   # as tensorflow_model_server without either flag
            assert jit.status_code == 500 and "XLA compilation disabled" in jit.json()["error"], jit.text
            assert not any("Compiled cluster using XLA" in line for line in server.log_lines())
        else:              # compiled with XLA, and the same answers
            assert jit.status_code == 200 and jit.json() == {"predictions": [[6.0], [7.0]]}, jit.text
            server.wait_log("Compiled cluster using XLA")


def test_a_process_that_did_not_ask_keeps_xla():
    # xla.configure is for serving processes only: importing the server changes nothing elsewhere.
    code = ("import server.worker, server.xla, tensorflow as tf\n"
            "f = tf.function(lambda x: x * 2.0, jit_compile=True)\n"
            "print(float(f(tf.constant(2.0))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "4.0", done.stderr[-2000:]
