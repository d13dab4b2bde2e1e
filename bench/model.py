"""The models the benchmark serves: the chapter's exported MNIST MLP (or a stand-in of its shape),
and a small convolutional network, the kind of model where batching pays.

`code/zh/savedmodel/saved_with_signature/<version>` is what `train_and_export.py` writes (signature
"call", float32 [None,28,28,1] -> [None,10]). When it is absent (a fresh clone before `make demo`,
or the smoke test), `export_standin()` writes an MLP with the same layers and random weights:
speed does not depend on what the weights learned, and nothing is downloaded or trained.

`export_cnn()` writes a ResNet-style network with the same signature (so the same request bodies
serve both models): a 3x3 stem, three stages of one residual block each (16, 32, 64 channels at
28x28, 14x14, 7x7), then a VGG-style dense head (the 7x7x64 features flattened, a 2,048-unit hidden
layer, 10 outputs), random weights: about 15.7 million multiply-adds and 6.5 million parameters
(26 MB) per image against the MLP's 80 thousand. The head is what makes batching pay on a CPU: for one
image its 26 MB of weights are read from memory for two floating-point operations per weight; a batch
of 32 reads them once for all 32. Measured in one process on the 2-core machine, one TensorFlow thread
per run (the benchmark's setting): one image per call, CPU 1.6 ms per image (from 4 threads, about
1,200 images/s); batches of 32, 0.38 ms per image (one thread, about 2,700 images/s). Without the head
(global average pooling, as first written) a single image cost 0.27 ms and a batch 0.19 ms per image:
batching could hardly pay, and the recorded run showed it (1.1x at 32 connections).
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

    return _save(MLP(), base_path, version)


def _save(module, base_path: pathlib.Path, version: int) -> pathlib.Path:
    """Export `module` with its signature "call" as BASE/VERSION; returns BASE."""
    import tensorflow as tf
    tf.saved_model.save(module, str(pathlib.Path(base_path) / str(version)), signatures={"call": module.call})
    return pathlib.Path(base_path)


CNN_STAGES = (16, 32, 64)
CNN_HIDDEN = 2048


def export_cnn(base_path: pathlib.Path, version: int = 1) -> pathlib.Path:
    """stem conv 3x3 -> 3 residual stages (conv-relu-conv + shortcut, stride 2 from the second) ->
    flatten -> Dense(2048, relu) -> Dense(10) -> softmax, exported with signature "call"."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    g = tf.random.Generator.from_seed(1)

    def conv_weights(name, k, c_in, c_out):
        std = (2.0 / (k * k * c_in)) ** 0.5             # He initialisation: activations stay in range
        return (tf.Variable(g.normal([k, k, c_in, c_out], stddev=std), name=f"{name}/kernel"),
                tf.Variable(tf.zeros([c_out]), name=f"{name}/bias"))

    class CNN(tf.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_weights("stem", 3, 1, CNN_STAGES[0])
            self.blocks = []
            c_in = CNN_STAGES[0]
            for i, c in enumerate(CNN_STAGES):
                stride = 1 if i == 0 else 2
                block = {"stride": stride, "a": conv_weights(f"block{i}/a", 3, c_in, c),
                         "b": conv_weights(f"block{i}/b", 3, c, c)}
                if stride != 1 or c_in != c:
                    block["proj"] = conv_weights(f"block{i}/proj", 1, c_in, c)
                self.blocks.append(block)
                c_in = c
            features = 7 * 7 * c_in                          # 28x28 halved twice
            self.w1 = tf.Variable(g.normal([features, CNN_HIDDEN], stddev=(2.0 / features) ** 0.5),
                                  name="hidden/kernel")
            self.b1 = tf.Variable(tf.zeros([CNN_HIDDEN]), name="hidden/bias")
            self.w = tf.Variable(g.normal([CNN_HIDDEN, 10], stddev=(1.0 / CNN_HIDDEN) ** 0.5), name="dense/kernel")
            self.b = tf.Variable(tf.zeros([10]), name="dense/bias")

        @staticmethod
        def conv(x, wb, stride=1):
            return tf.nn.bias_add(tf.nn.conv2d(x, wb[0], stride, "SAME"), wb[1])

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="inputs")])
        def call(self, inputs):
            x = tf.nn.relu(self.conv(inputs, self.stem))
            for block in self.blocks:
                y = tf.nn.relu(self.conv(x, block["a"], block["stride"]))
                y = self.conv(y, block["b"])
                shortcut = self.conv(x, block["proj"], block["stride"]) if "proj" in block else x
                x = tf.nn.relu(y + shortcut)
            x = tf.reshape(x, [-1, self.w1.shape[0]])
            x = tf.nn.relu(x @ self.w1 + self.b1)
            return tf.nn.softmax(x @ self.w + self.b)

    return _save(CNN(), base_path, version)


EXPORTS = {"mlp": export_standin, "cnn": export_cnn}

if __name__ == "__main__":
    # python -m bench.model DIR [mlp|cnn]: export the stand-in MLP (default) or the CNN into DIR (run
    # in a subprocess by bench/run.py, so that TensorFlow never loads in the harness).
    import sys
    EXPORTS[sys.argv[2] if len(sys.argv) > 2 else "mlp"](pathlib.Path(sys.argv[1]))
