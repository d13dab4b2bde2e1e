"""The handbook's MNIST models served by `python -m server`, queried by the handbook's client."""
import re
import subprocess
import sys

import numpy as np
import pytest
import requests

from .conftest import SAVEDMODEL
from .serverproc import ServerProcess

pytestmark = pytest.mark.slow

sys.path.insert(0, str(SAVEDMODEL))
from mnist_loader import MNISTLoader  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return MNISTLoader()


@pytest.fixture(scope="module")
def served(mlp_run, seq_run, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / "models.config"
    cfg.write_text(f"""
model_config_list {{
  config {{ name: "MLP" base_path: "{mlp_run.base}" model_platform: "tensorflow" }}
  config {{ name: "Sequential" base_path: "{seq_run.base}" model_platform: "tensorflow" }}
}}""")
    with ServerProcess([f"--model_config_file={cfg}"]) as server:
        server.wait_available("MLP")
        server.wait_available("Sequential")
        yield server


def parse_digits(line: str) -> list[int]:
    return [int(d) for d in re.findall(r"\d+", line)]


def test_handbook_client_matches_the_in_process_model(served, mlp_run, data):
    r = subprocess.run([sys.executable, "client.py", f"--port={served.port}", "--host=127.0.0.1"],
                       cwd=SAVEDMODEL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("[")]
    predicted, labels = parse_digits(lines[-2]), parse_digits(lines[-1])
    expected = np.argmax(mlp_run.model(data.test_data[0:10]).numpy(), axis=-1)
    assert predicted == expected.tolist()
    assert labels == data.test_label[0:10].tolist()
    assert sum(p == t for p, t in zip(predicted, labels)) >= 8  # a 92%-accurate model on 10 digits


def test_served_probabilities_equal_the_in_process_model(served, mlp_run, seq_run, data):
    images = data.test_data[0:10]
    for name, run, signature in (("MLP", mlp_run, "call"), ("Sequential", seq_run, "serving_default")):
        r = requests.post(f"{served.url}/v1/models/{name}:predict",
                          json={"signature_name": signature, "instances": images.tolist()})
        assert r.status_code == 200, r.text
        served_probs = np.array(r.json()["predictions"])
        assert served_probs.shape == (10, 10)
        np.testing.assert_allclose(served_probs, run.model(images).numpy(), atol=1e-5)


def test_batch_of_one_and_columnar(served, data):
    r = requests.post(f"{served.url}/v1/models/Sequential:predict", json={"inputs": data.test_data[0:1].tolist()})
    assert r.status_code == 200 and np.array(r.json()["outputs"]).shape == (1, 10)


def test_metadata_shows_the_call_signature(served):
    doc = requests.get(f"{served.url}/v1/models/MLP/metadata").json()
    call = doc["metadata"]["signature_def"]["signature_def"]["call"]
    (spec,) = call["inputs"].values()
    assert spec["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in spec["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]


def test_flat_images_are_fed_as_tf_serving_feeds_them(served, data, mlp_run):
    # 784 flat pixels instead of 28x28x1: TF Serving feeds the tensor without comparing it to the declared
    # shape, and this model flattens its input first, so it answers; so does this server, with the same
    # probabilities as for the 28x28x1 images.
    images = data.test_data[0:2]
    r = requests.post(f"{served.url}/v1/models/MLP:predict",
                      json={"signature_name": "call", "instances": images.reshape(2, 784).tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["predictions"]), mlp_run.model(images).numpy(), atol=1e-5)


def test_a_shape_the_model_cannot_take_names_the_input(served, data):
    # When the model itself fails, the answer names the input, what it declares and what arrived.
    ten_pixels = data.test_data[0:2].reshape(2, 784)[:, :10]
    r = requests.post(f"{served.url}/v1/models/MLP:predict",
                      json={"signature_name": "call", "instances": ten_pixels.tolist()})
    assert r.status_code == 400
    message = r.json()["error"]
    assert "inputs" in message and "float" in message
    assert "[-1,28,28,1]" in message.replace(" ", "") and "[2,10]" in message.replace(" ", "")
