"""The naive baseline that issue 6 measures against: the handbook's "simple Flask server".

Flask's development server, `request.get_json()`, `np.array`, the SavedModel's signature called
through `tf.saved_model.load(...).signatures[...]`, and `jsonify`. Nothing tuned on purpose.

    python -m bench.naive_server --port 8600 --model_base_path /abs/path [--model_name MLP]
"""
import argparse
import logging
import os

import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request


def latest_version_dir(base_path: str) -> str:
    versions = [int(d) for d in os.listdir(base_path) if d.isdigit()]
    if not versions:
        raise SystemExit(f"no numeric version directory under {base_path}")
    return os.path.join(base_path, str(max(versions)))


def create_app(model_name: str, base_path: str, signature_name: str = "call") -> Flask:
    model = tf.saved_model.load(latest_version_dir(base_path))
    infer = model.signatures[signature_name]
    app = Flask(__name__)

    @app.route(f"/v1/models/{model_name}", methods=["GET"])
    def status():
        return jsonify({"model_version_status": [{"state": "AVAILABLE"}]})

    @app.route(f"/v1/models/{model_name}:predict", methods=["POST"])
    def predict():
        data = request.get_json()
        columnar = "inputs" in data          # the columnar form, so that scenario compares too
        x = np.array(data["inputs"] if columnar else data["instances"], dtype=np.float32)
        outputs = infer(tf.constant(x))
        y = next(iter(outputs.values())).numpy()
        return jsonify({"outputs": y.tolist()} if columnar else {"predictions": y.tolist()})

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_name", default="MLP")
    parser.add_argument("--model_base_path", required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # no log line per request
    app = create_app(args.model_name, args.model_base_path)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
