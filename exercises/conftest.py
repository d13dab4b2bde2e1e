"""Shared set-up for the exercise checks (`make exercises`, or `python -m pytest -m exercise exercises`).

Which files are checked: the student's files in exercises/ by default; another folder with the same file
names when the environment variable EXERCISE_DIR (or the option --exercise-dir) names it, e.g.
EXERCISE_DIR=exercises/solutions for the reference solutions.

Everything expensive is done once per session and only when a check needs it: the MNIST MLP is trained
for two short epochs (version 1 after the first, version 2 after the second) and one server process
serves four models from a config file: MLP (version 1), MLP_hot and MLP_two (seeded with version 1, for
the checks that publish a new version while it runs) and TF Serving's half_plus_two test model, with CORS on
(the browser exercise sends a preflight request).
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import sys

import pytest

os.environ.setdefault("MNIST_OFFLINE", "1")        # never download during a check
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"
TESTDATA = ROOT.parent / "shared" / "fixtures" / "tf_serving_testdata"
for path in (str(ROOT), str(SAVEDMODEL)):
    if path not in sys.path:
        sys.path.insert(0, path)

from tests.serverproc import ServerProcess, free_port  # noqa: E402  (needs ROOT on sys.path)

NUM_IMAGES = 8  # test images the checks send


def pytest_addoption(parser):
    parser.addoption("--exercise-dir", default=None,
                     help="folder holding the exercise files to check (default: $EXERCISE_DIR or exercises/)")


@pytest.fixture(scope="session")
def exercise_dir(request) -> pathlib.Path:
    chosen = request.config.getoption("--exercise-dir") or os.environ.get("EXERCISE_DIR") or str(HERE)
    path = pathlib.Path(chosen)
    if not path.is_absolute():
        path = (ROOT / path) if (ROOT / path).is_dir() else path.resolve()
    if not path.is_dir():
        pytest.fail(f"EXERCISE_DIR={chosen}: no such folder")
    return path


@pytest.fixture(scope="session")
def load_exercise(exercise_dir):
    """load_exercise("ex1_columnar") imports that file from the chosen folder as a fresh module."""
    def load(name: str):
        file = exercise_dir / f"{name}.py"
        if not file.is_file():
            pytest.fail(f"找不到练习文件 {file}")
        spec = importlib.util.spec_from_file_location(f"exercise_{name}_{abs(hash(str(file)))}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


class Mnist:
    """The MLP after one epoch (version 1) and after two (version 2), exported, with their answers."""

    def __init__(self, workdir: pathlib.Path):
        import numpy as np
        import tensorflow as tf

        import train_and_export as tae
        from mnist_loader import MNISTLoader

        tf.keras.utils.set_random_seed(0)
        loader = MNISTLoader(seed=0)
        self.images = loader.test_data[:NUM_IMAGES]
        self.model = tae.MLP()
        self.export_v1 = workdir / "export_v1"
        self.export_v2 = workdir / "export_v2"
        tae.train(self.model, loader, 1, 50, 0.001)
        self.v1 = np.asarray(self.model(self.images))
        tae.export(self.model, str(self.export_v1))
        tae.train(self.model, loader, 1, 50, 0.001)
        self.v2 = np.asarray(self.model(self.images))
        tae.export(self.model, str(self.export_v2))
        self.base_v1 = workdir / "MLP"                 # base path with version 1, for servers
        shutil.copytree(self.export_v1, self.base_v1 / "1")


@pytest.fixture(scope="session")
def mnist(tmp_path_factory) -> Mnist:
    return Mnist(tmp_path_factory.mktemp("exercise_mnist"))


class SharedServer:
    def __init__(self, process: ServerProcess, bases: dict[str, pathlib.Path]):
        self.process, self.url, self.bases = process, process.url, bases

    def status(self, name: str) -> dict:
        return self.process.status(name) or {}

    def wait_available(self, name: str, version: str, timeout: float = 90) -> dict:
        return self.process.wait_available(name, version, timeout=timeout)


@pytest.fixture(scope="session")
def server(mnist, tmp_path_factory):
    """One server for the checks: MLP, MLP_hot, MLP_two (all version 1) and half_plus_two."""
    work = tmp_path_factory.mktemp("exercise_server")
    bases = {"MLP": mnist.base_v1}
    for name in ("MLP_hot", "MLP_two"):
        bases[name] = work / name
        shutil.copytree(mnist.base_v1, bases[name])
    half_plus_two = TESTDATA / "saved_model_half_plus_two_cpu"
    if not half_plus_two.is_dir():
        pytest.fail(f"TF Serving 的测试模型不在 {half_plus_two}")
    bases["half_plus_two"] = half_plus_two
    config = work / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: {json.dumps(name)} base_path: {json.dumps(str(base))} model_platform: "tensorflow" }}\n'
        for name, base in bases.items()) + "}\n")
    grpc_port = free_port()
    with ServerProcess([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                        "--rest_api_enable_cors_support=true", f"--port={grpc_port}"]) as process:
        for name in bases:
            process.wait_available(name)
        shared = SharedServer(process, bases)
        shared.grpc_port = grpc_port
        yield shared
