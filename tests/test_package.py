"""The installable package (pyproject.toml): the wheel `python -m build` makes holds one import package of
its own name (never a generic `server`), and installed in a fresh virtual environment it serves a model
through the `tensorflow_model_server` command, with TF Serving's command line."""
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile

import pytest
import requests

from .serverproc import ROOT, free_port, stop_group

pytestmark = pytest.mark.slow

IMPORT_NAME = "tf_serving_py"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    """The wheel, built from a copy of what pyproject.toml packages (the checkout is left as it is)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "server", src / "server", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "requirements").mkdir()
    shutil.copy(ROOT / "requirements" / "runtime.in", src / "requirements")
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools, pinned in the lock) from this environment, offline.
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> pathlib.Path:
    """A fresh virtual environment with the wheel installed (--no-deps); its dependencies are this
    environment's locked packages, seen through a .pth file (as the bench's peer environments do)."""
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(env)], check=True,
                   timeout=120)
    purelib = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    pathlib.Path(purelib, "project-deps.pth").write_text(os.path.realpath(sysconfig.get_paths()["purelib"]) + "\n")
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=120)
    return env


def test_wheel_has_one_top_level_package_of_its_own_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {IMPORT_NAME, f"{IMPORT_NAME}-0.1.0.dist-info"}, top
    assert f"{IMPORT_NAME}/grpc/server.py" in names and f"{IMPORT_NAME}/rest/app.py" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{IMPORT_NAME}-0.1.0.dist-info/entry_points.txt").decode()
    assert "tensorflow_model_server = tf_serving_py.cli:console_main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{IMPORT_NAME}-0.1.0.dist-info/METADATA").decode()
    runtime = [line for line in (ROOT / "requirements" / "runtime.in").read_text().splitlines()
               if line and not line.startswith("#")]
    assert runtime and all(f"Requires-Dist: {req}" in metadata for req in runtime)


def test_installed_command_help_and_module(venv, tmp_path):
    done = subprocess.run([str(venv / "bin" / "tensorflow_model_server"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: tensorflow_model_server ") and "--model_config_file" in done.stdout
    done = subprocess.run([str(venv / "bin" / "python"), "-m", IMPORT_NAME, "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m {IMPORT_NAME} "), done.stderr
    # Nothing called `server` was installed: outside the checkout it is not importable.
    done = subprocess.run([str(venv / "bin" / "python"), "-c", "import server"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "No module named 'server'" in done.stderr


def test_installed_command_serves_a_model(venv, testdata, tmp_path):
    # From a folder without the checkout's server/ (not importable there: the test above), so the command and
    # its spawned worker processes can only run the installed package.
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "tensorflow_model_server"), "--port=0", f"--rest_api_port={port}",
                                 "--rest_api_host=127.0.0.1", "--model_name=hp2",
                                 f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"],
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                r = requests.post(f"http://127.0.0.1:{port}/v1/models/hp2:predict",
                                  json={"instances": [1.0, 2.0, 5.0]}, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        assert r.status_code == 200 and r.json() == {"predictions": [2.5, 3.0, 4.5]}, r.text
    finally:
        assert stop_group(proc) == 0
