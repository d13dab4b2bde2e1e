"""BentoML serving the benchmark's SavedModel, as a BentoML user writes it.

A `@bentoml.service` class that loads the SavedModel once and an `@bentoml.api` method that calls its
signature. BentoML maps the JSON body's keys to the method's parameters, so the route below takes TF
Serving's request bodies unchanged (`{"signature_name": ..., "instances": ...}` or `"inputs"`) and
answers as TF Serving does. Started by `bentoml serve` with its defaults (one worker), in its own
environment (`.venv-peers/bentoml`, from bench/requirements-bentoml.txt):

    BENCH_MODEL_BASE_PATH=ABS BENCH_MODEL_NAME=MLP .venv-peers/bentoml/bin/bentoml serve \\
        bench.bentoml_service:SavedModel --host 127.0.0.1 --port 8600

Readiness: `GET /readyz`. TensorFlow runs with the thread settings named by BENCH_INTRA_OP and
BENCH_INTER_OP (the benchmark gives it those of `python -m server`), so that what differs is the
serving stack.
"""
import os

import bentoml
import numpy as np

BASE_PATH = os.environ.get("BENCH_MODEL_BASE_PATH", "")
MODEL_NAME = os.environ.get("BENCH_MODEL_NAME", "MLP")


def latest_version_dir(base_path: str) -> str:
    versions = [int(d) for d in os.listdir(base_path) if d.isdigit()]
    if not versions:
        raise SystemExit(f"no numeric version directory under {base_path}")
    return os.path.join(base_path, str(max(versions)))


@bentoml.service
class SavedModel:
    def __init__(self) -> None:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("BENCH_INTRA_OP", "0")))
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("BENCH_INTER_OP", "0")))
        self.tf = tf
        self.model = tf.saved_model.load(latest_version_dir(BASE_PATH))

    @bentoml.api(route=f"/v1/models/{MODEL_NAME}:predict")
    def predict(self, signature_name: str = "serving_default", instances: list | None = None,
                inputs: list | None = None) -> dict:
        infer = self.model.signatures[signature_name]
        columnar = inputs is not None       # TF Serving's columnar form, so that scenario compares too
        x = np.asarray(inputs if columnar else instances, dtype=np.float32)
        y = next(iter(infer(self.tf.constant(x)).values())).numpy()
        return {"outputs": y.tolist()} if columnar else {"predictions": y.tolist()}
