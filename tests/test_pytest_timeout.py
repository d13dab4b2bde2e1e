"""pytest.ini's per-test limit (pytest-timeout): a hung test fails by name, with its stack, and the run goes on."""
import subprocess
import sys

from .serverproc import ROOT


def test_a_hung_test_is_stopped_and_named(tmp_path):
    (tmp_path / "test_hangs.py").write_text(
        "import threading\n\n"
        "def test_waits_forever():\n"
        "    threading.Event().wait()\n\n"
        "def test_after_it():\n"
        "    assert True\n")
    ini = (ROOT / "pytest.ini").read_text()
    assert "\ntimeout = " in ini and "timeout_method = signal" in ini
    (tmp_path / "pytest.ini").write_text(ini.replace("testpaths = tests", "testpaths = .")
                                         .split("\ntimeout = ")[0] + "\ntimeout = 2\ntimeout_method = signal\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_hangs.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "FAILED test_hangs.py::test_waits_forever - Failed: Timeout (>2.0s)" in done.stdout, done.stdout[-3000:]
    assert "test_hangs.py:4: " in done.stdout            # where it hung
    assert "1 failed, 1 passed" in done.stdout           # the run went on
