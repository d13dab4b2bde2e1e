"""The model the benchmark serves: the chapter's exported MNIST MLP, or a stand-in of its shape.

`code/zh/savedmodel/saved_with_signature/<version>` is what `train_and_export.py` writes (signature
"call", float32 [None,28,28,1] -> [None,10]). When it is absent (a fresh clone before `make demo`,
or the smoke test), `export_standin()` writes an MLP with the same layers and random weights:
speed does not depend on what the weights learned, and nothing is downloaded or trained.
"""
from __future__ import annotations

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
MNIST_EXPORT = ROOT / "code" / "zh" / "savedmodel" / "saved_with_signature"


def has_versions(base_path: pathlib.Path) -> bool:
    return base_path.is_dir() and any(p.name.isdigit() for p in base_path.iterdir())


def export_standin(base_path: pathlib.Path, version: int = 1) -> pathlib.Path:
    """Flatten -> Dense(100, relu) -> Dense(10) -> softmax, exported with signature "call"."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    class MLP(tf.Module):
        def __init__(self):
            super().__init__()
            g = tf.random.Generator.from_seed(0)
            self.w1 = tf.Variable(g.normal([784, 100], stddev=0.05), name="dense/kernel")
            self.b1 = tf.Variable(tf.zeros([100]), name="dense/bias")
            self.w2 = tf.Variable(g.normal([100, 10], stddev=0.1), name="dense_1/kernel")
            self.b2 = tf.Variable(tf.zeros([10]), name="dense_1/bias")

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="inputs")])
        def call(self, inputs):
            x = tf.reshape(inputs, [-1, 784])
            h = tf.nn.relu(x @ self.w1 + self.b1)
            return tf.nn.softmax(h @ self.w2 + self.b2)

    m = MLP()
    path = pathlib.Path(base_path) / str(version)
    tf.saved_model.save(m, str(path), signatures={"call": m.call})
    return pathlib.Path(base_path)


if __name__ == "__main__":
    # python -m bench.model DIR: export the stand-in into DIR (run in a subprocess by bench/run.py,
    # so that TensorFlow never loads in the harness).
    import sys
    export_standin(pathlib.Path(sys.argv[1]))
