"""The model formats the loaders serve, over REST through a real `python -m server` process: TF Serving's
half_plus_three, a Keras 3 model written with tf.saved_model.save (served through the object-graph
loader; a copy without its object graph ends with a re-export hint instead), and TensorFlow Lite
models with --prefer_tflite_model."""
import shutil
import time

import numpy as np
import pytest
import requests
from tensorflow.core.protobuf import saved_model_pb2

from .serverproc import ServerProcess


def wait_settled(server, name, timeout=120):
    """The model's status once every version is AVAILABLE or END."""
    deadline = time.monotonic() + timeout
    while True:
        server._check_alive()
        doc = server.status(name) or {}
        states = [s.get("state") for s in doc.get("model_version_status", [])]
        if states and all(s in ("AVAILABLE", "END") for s in states):
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: {doc}")
        time.sleep(0.1)


def post(server, path, doc):
    r = requests.post(f"{server.url}{path}", json=doc, timeout=30)
    return r.status_code, r.json()


@pytest.fixture(scope="module")
def keras3_base(tmp_path_factory):
    """A tiny Keras 3 model written with tf.saved_model.save, and a copy without its object graph."""
    import keras
    import tensorflow as tf
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.layers[-1].set_weights([np.arange(6, dtype=np.float32).reshape(3, 2), np.array([1.0, -1.0], np.float32)])
    root = tmp_path_factory.mktemp("keras3")
    tf.saved_model.save(model, str(root / "good" / "1"))
    shutil.copytree(root / "good" / "1", root / "stripped" / "1")
    pb = root / "stripped" / "1" / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    proto.meta_graphs[0].ClearField("object_graph_def")
    pb.write_bytes(proto.SerializeToString())
    return root


def test_saved_models_over_rest(testdata, keras3_base, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""
model_config_list {{
  config {{ name: "half_plus_three" base_path: "{testdata}/saved_model_half_plus_three" model_platform: "tensorflow" }}
  config {{ name: "keras3" base_path: "{keras3_base}/good" model_platform: "tensorflow" }}
  config {{ name: "keras3_stripped" base_path: "{keras3_base}/stripped" model_platform: "tensorflow" }}
}}""")
    # no load retries: a version that cannot load ends at once (TF Serving retries 5 times a minute apart)
    with ServerProcess([f"--model_config_file={cfg}", "--max_num_load_retries=0"]) as server:
        # TF Serving's integration test: x = 2.0 with shape [1] answers 4.0
        assert wait_settled(server, "half_plus_three")["model_version_status"][0]["state"] == "AVAILABLE"
        assert post(server, "/v1/models/half_plus_three:predict", {"inputs": {"x": [2.0]}}) == (200, {"outputs": [4.0]})

        # Keras 3 + tf.saved_model.save: AVAILABLE, and it answers (TF Serving 2.15-2.17 fails every request)
        assert wait_settled(server, "keras3")["model_version_status"][0]["state"] == "AVAILABLE"
        server.wait_log("through TensorFlow's object-graph loader")
        status, doc = post(server, "/v1/models/keras3:predict", {"instances": [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]})
        assert (status, doc) == (200, {"predictions": [[17.0, 21.0], [1.0, -1.0]]})
        meta = requests.get(f"{server.url}/v1/models/keras3/metadata", timeout=30).json()
        assert "serving_default" in meta["metadata"]["signature_def"]["signature_def"]
        status, doc = post(server, "/v1/models/keras3:predict", {"instances": [[1.0, 2.0]]})
        assert status == 400 and "Expecting shape [-1,3] but got: [1,2]" in doc["error"]

        # ...and the copy no loader can run never reports AVAILABLE: its status says how to re-export it.
        (version,) = wait_settled(server, "keras3_stripped")["model_version_status"]
        assert version["state"] == "END" and version["status"]["error_code"] == "FAILED_PRECONDITION"
        assert "model.export(" in version["status"]["error_message"]


def test_tflite_models_over_rest(testdata, tmp_path):
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""
model_config_list {{
  config {{ name: "tflite" base_path: "{testdata}/saved_model_half_plus_two_tflite" model_platform: "tensorflow" }}
  config {{ name: "tflite_sigdef" base_path: "{testdata}/saved_model_half_plus_two_tflite_with_sigdef"
           model_platform: "tensorflow" }}
  config {{ name: "parse_example" base_path: "{testdata}/parse_example_tflite" model_platform: "tensorflow" }}
  config {{ name: "bad" base_path: "{testdata}/bad_half_plus_two" model_platform: "tensorflow" }}
  config {{ name: "savedmodel" base_path: "{testdata}/saved_model_half_plus_two_cpu" model_platform: "tensorflow" }}
}}""")
    with ServerProcess([f"--model_config_file={cfg}", "--max_num_load_retries=0", "--prefer_tflite_model",
                        "--num_tflite_pools=2",
                        "--num_tflite_interpreters_per_pool=2"]) as server:
        for name in ("tflite", "tflite_sigdef"):
            assert wait_settled(server, name)["model_version_status"][0]["state"] == "AVAILABLE"
            # TF Serving's test: x = 2.0 with shape [1] answers 3.0
            assert post(server, f"/v1/models/{name}:predict", {"inputs": {"x": [2.0]}}) == (200, {"outputs": [3.0]})
            assert post(server, f"/v1/models/{name}:predict", {"instances": [[1.0], [5.0]]}) == (
                200, {"predictions": [[2.5], [4.5]]})
        meta = requests.get(f"{server.url}/v1/models/tflite/metadata", timeout=30).json()
        sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert sig["method_name"] == "tensorflow/serving/predict" and list(sig["inputs"]) == ["x"]

        assert wait_settled(server, "parse_example")["model_version_status"][0]["state"] == "AVAILABLE"
        status, doc = post(server, "/v1/models/parse_example:predict", {"instances": [{"b64": ""}]})
        assert status == 200 and doc == {"predictions": [{"ParseExample/ParseExampleV2": [0.0],
                                                          "ParseExample/ParseExampleV2:1": ["missing"]}]}

        (version,) = wait_settled(server, "bad")["model_version_status"]
        assert version["state"] == "END" and "Session Bundle is deprecated and removed." in (
            version["status"]["error_message"])
        # a SavedModel beside them is still served as one
        assert post(server, "/v1/models/savedmodel:predict", {"instances": [[2.0]]}) == (200, {"predictions": [[3.0]]})
