"""KServe's Python model server serving the benchmark's SavedModel, as a KServe user writes it.

A `kserve.Model` whose `predict` calls the SavedModel's signature, started by `kserve.ModelServer`
with its defaults (one uvicorn worker) and its V1 protocol, which is TF Serving's REST API
(`POST /v1/models/NAME:predict` with `{"instances": ...}`; readiness: `GET /v1/models/NAME`).
Runs in its own environment (`.venv-peers/kserve`, from bench/requirements-kserve.txt):

    .venv-peers/kserve/bin/python -m bench.kserve_server --http_port 8600 --model_base_path ABS

TensorFlow runs with the same thread settings as `python -m server` in the benchmark
(--intra_op/--inter_op, as its --tensorflow_intra_op_parallelism/--tensorflow_inter_op_parallelism),
so that what differs is the serving stack. Two changes from KServe's defaults, for the benchmark's
machine rules: the REST server listens on 127.0.0.1 (KServe's own code binds 0.0.0.0), and its gRPC
server is off (not measured).
"""
import argparse
import os

import numpy as np
import tensorflow as tf


def latest_version_dir(base_path: str) -> str:
    versions = [int(d) for d in os.listdir(base_path) if d.isdigit()]
    if not versions:
        raise SystemExit(f"no numeric version directory under {base_path}")
    return os.path.join(base_path, str(max(versions)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--model_name", default="MLP")
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--signature_name", default="call")
    parser.add_argument("--intra_op", type=int, default=0)
    parser.add_argument("--inter_op", type=int, default=0)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)

    import kserve
    import uvicorn

    class SavedModel(kserve.Model):
        def __init__(self, name: str, base_path: str, signature_name: str):
            super().__init__(name)
            self.base_path, self.signature_name = base_path, signature_name
            self.infer = None

        def load(self) -> bool:
            self.infer = tf.saved_model.load(latest_version_dir(self.base_path)).signatures[self.signature_name]
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None):
            columnar = "inputs" in payload       # TF Serving's columnar form, so that scenario compares too
            x = np.asarray(payload["inputs"] if columnar else payload["instances"], dtype=np.float32)
            y = next(iter(self.infer(tf.constant(x)).values())).numpy()
            return {"outputs": y.tolist()} if columnar else {"predictions": y.tolist()}

    loopback_config = uvicorn.Config.__init__

    def on_loopback(self, *a, **kw):
        kw["host"] = "127.0.0.1"
        loopback_config(self, *a, **kw)

    uvicorn.Config.__init__ = on_loopback
    model = SavedModel(args.model_name, args.model_base_path, args.signature_name)
    model.load()
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False).start([model])


if __name__ == "__main__":
    main()
