"""Training and export scripts (code/zh/savedmodel): accuracy, exported signatures, TF Serving-style
loading, saved_model_cli, versioning and atomic export.

Both models are trained once per session with the scripts' default settings (offline MNIST)."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
sys.path.insert(0, str(SAVEDMODEL))

import export_util  # noqa: E402
from mnist_loader import MNISTLoader  # noqa: E402

from .conftest import load_script  # noqa: E402

pytestmark = pytest.mark.slow


train_and_export = load_script("train_and_export")
keras_sequential = load_script("keras_sequential")


@pytest.fixture(scope="session")
def images():
    loader = MNISTLoader()
    return loader.test_data, loader.test_label


@pytest.fixture(params=["mlp", "seq"])
def run(request, mlp_run, seq_run):
    return {"mlp": mlp_run, "seq": seq_run}[request.param]


def run_in_session(path, signature, batch):
    """Load like TF Serving (TF1 session, tag serve) and run the signature by its tensor names."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature_def = meta_graph.signature_def[signature]
        (input_info,) = signature_def.inputs.values()
        (output_info,) = signature_def.outputs.values()
        result = session.run(output_info.name, {input_info.name: batch})
        return signature_def, input_info, output_info, result


def test_default_training_reaches_90_percent(run):
    assert run.accuracy >= 0.90
    last_lines = run.output.splitlines()[-2:]
    assert last_lines[0] == "test accuracy: %f" % run.accuracy
    assert last_lines[1].startswith("已导出到 %s" % run.path)
    assert "数据来源" in run.output.splitlines()[0]


def test_export_goes_to_version_1_without_leftovers(run):
    assert pathlib.Path(run.path) == run.base / "1"
    assert sorted(os.listdir(run.base)) == ["1"]
    assert (run.base / "1" / "saved_model.pb").is_file()
    assert (run.base / "1" / "variables").is_dir()


@pytest.mark.parametrize("batch_size", [1, 10])
def test_tf_serving_style_load_matches_the_model(run, images, batch_size):
    batch = images[0][:batch_size]
    signature_def, input_info, output_info, result = run_in_session(run.path, run.signature, batch)
    assert signature_def.method_name == "tensorflow/serving/predict"
    assert input_info.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in input_info.tensor_shape.dim] == [-1, 28, 28, 1]
    assert [d.size for d in output_info.tensor_shape.dim] == [-1, 10]
    assert result.shape == (batch_size, 10)
    np.testing.assert_allclose(result.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(result, run.model(batch).numpy(), rtol=1e-5, atol=1e-6)


def test_mlp_signature_call_is_also_serving_default(mlp_run, images):
    batch = images[0][:10]
    _, input_info, _, by_call = run_in_session(mlp_run.path, "call", batch)
    _, _, _, by_default = run_in_session(mlp_run.path, "serving_default", batch)
    np.testing.assert_array_equal(by_call, by_default)
    # the exported model classifies the held-out images as well as the trained one
    labels = np.argmax(by_call, axis=-1)
    assert (labels == images[1][:10]).mean() >= 0.8


@pytest.mark.parametrize("batch_size", [1, 10])
def test_tf2_load_runs_the_signature(run, images, batch_size):
    loaded = tf.saved_model.load(str(run.path))
    function = loaded.signatures[run.signature]
    (output,) = function(tf.constant(images[0][:batch_size])).values()
    assert output.shape == (batch_size, 10)
    np.testing.assert_allclose(output.numpy(), run.model(images[0][:batch_size]).numpy(), rtol=1e-5, atol=1e-6)


def test_saved_model_cli_lists_the_signatures(mlp_run, seq_run):
    cli = ROOT / ".venv" / "bin" / "saved_model_cli"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # both at once: each start-up imports TensorFlow (seconds)
    processes = [subprocess.Popen(command + ["show", "--all", "--dir", str(run.path)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for run in (mlp_run, seq_run)]
    outputs = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=120)
        finally:
            process.kill()
        assert process.returncode == 0, err
        outputs.append(out)
    mlp_out, seq_out = outputs
    assert "signature_def['call']:" in mlp_out
    assert "signature_def['serving_default']:" in mlp_out
    assert "signature_def['serving_default']:" in seq_out
    for out in outputs:
        assert "MetaGraphDef with tag-set: 'serve'" in out
        assert "shape: (-1, 28, 28, 1)" in out
        assert "shape: (-1, 10)" in out
        assert "Method name is: tensorflow/serving/predict" in out


def test_next_free_version_and_no_overwrite(mlp_run, tmp_path):
    base = tmp_path / "saved_with_signature"
    assert export_util.choose_version(str(base)) == 1
    (base / "1").mkdir(parents=True)
    (base / "7").mkdir()
    (base / ".tmp-9-1").mkdir()  # not a version
    (base / "10.txt").touch()     # not a folder
    assert export_util.existing_versions(str(base)) == [1, 7]
    assert export_util.choose_version(str(base)) == 8
    assert export_util.choose_version(str(base), 3) == 3
    assert export_util.choose_version(str(base), 7, overwrite=True) == 7
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_util.choose_version(str(base), 7)
    # the script refuses before training
    with pytest.raises(SystemExit) as exit_info:
        train_and_export.main(["--model_base_path", str(base), "--version", "7"])
    assert exit_info.value.code == 2
    # a real export into the next free version, then an overwrite of it
    path = export_util.export_atomically(lambda p: train_and_export.export(mlp_run.model, p), str(base), 8)
    assert path == str(base / "8") and (base / "8" / "saved_model.pb").is_file()
    with pytest.raises(FileExistsError):
        export_util.export_atomically(lambda p: train_and_export.export(mlp_run.model, p), str(base), 8)
    (base / "8" / "marker").touch()
    export_util.export_atomically(lambda p: train_and_export.export(mlp_run.model, p), str(base), 8, overwrite=True)
    assert not (base / "8" / "marker").exists() and (base / "8" / "saved_model.pb").is_file()
    assert sorted(os.listdir(base)) == [".tmp-9-1", "1", "10.txt", "7", "8"]


@pytest.mark.parametrize("script_name", ["train_and_export", "keras_sequential"])
def test_interrupted_export_leaves_no_version(script_name, mlp_run, seq_run, tmp_path, monkeypatch):
    script, run = {"train_and_export": (train_and_export, mlp_run),
                   "keras_sequential": (keras_sequential, seq_run)}[script_name]
    real_save = tf.saved_model.save
    calls = []

    def save_half_then_fail(obj, export_dir, *args, **kwargs):
        calls.append(export_dir)
        real_save(obj, export_dir, *args, **kwargs)       # a complete-looking SavedModel...
        os.remove(os.path.join(export_dir, "variables", "variables.index"))  # ...missing its variables
        raise KeyboardInterrupt("interrupted while writing")

    monkeypatch.setattr(tf.saved_model, "save", save_half_then_fail)
    base = tmp_path / "models"
    with pytest.raises(KeyboardInterrupt):
        export_util.export_atomically(lambda p: script.export(run.model, p), str(base), 1)
    assert calls and not os.path.basename(calls[0]).isdigit()  # it wrote into a non-numeric folder
    assert os.listdir(base) == []  # neither a version nor the temporary folder is left
    with pytest.raises(OSError):
        tf.compat.v1.saved_model.loader.load(tf.compat.v1.Session(graph=tf.Graph()), ["serve"], str(base / "1"))


def test_keras3_note_decorated_call_gets_no_gradients():
    """The docstring of train_and_export.py explains why call is not decorated: this is still true."""
    class DecoratedMLP(train_and_export.MLP):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
        def call(self, inputs):
            return super().call(inputs)

    images = np.zeros((4, 28, 28, 1), np.float32)
    for model_class, expect_none in ((DecoratedMLP, True), (train_and_export.MLP, False)):
        model = model_class()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(images))
        grads = tape.gradient(loss, model.trainable_variables)
        assert len(grads) == 4
        assert all((grad is None) == expect_none for grad in grads)


def test_keras3_note_tf_saved_model_save_is_not_servable(tmp_path):
    """The docstrings explain why the scripts do not use tf.saved_model.save(model): this is still true."""
    model = keras_sequential.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    images = np.zeros((100, 28, 28, 1), np.float32)
    model.fit(images, np.zeros(100, np.int32), batch_size=50, epochs=1, verbose=0)
    tf.saved_model.save(model, str(tmp_path / "1"))
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(tmp_path / "1"))
        (input_info,) = meta_graph.signature_def["serving_default"].inputs.values()
        (output_info,) = meta_graph.signature_def["serving_default"].outputs.values()
        assert [d.size for d in input_info.tensor_shape.dim] == [50, 28, 28, 1]  # batch fixed by training
        with pytest.raises(tf.errors.FailedPreconditionError, match="Could not find variable"):
            session.run(output_info.name, {input_info.name: images[:50]})
