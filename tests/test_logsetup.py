"""server/logsetup.py: TensorFlow's GPU probing noise is kept out of the log, nothing else is."""
import subprocess
import sys

import pytest

from server import logsetup

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796050543.916879   11816 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1796050549.832989   11816 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796050543.916487   11816 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
]
KEPT = [
    "E0000 00:00:1796050549.832989   11816 saved_model.cc:99] Loading SavedModel failed: NOT_FOUND",
    "2026-11-30 14:56:35,397 12888 ERROR server.lifecycle: Loading servable version m 1 failed: ...",
    "Traceback (most recent call last):",
    "F0000 00:00:1796050549.832989   11816 cuda_driver.cc:10] Check failed: the GPU is on fire",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR, and more",
]


@pytest.mark.parametrize("line", NOISE)
def test_gpu_probe_lines_are_noise(line):
    assert logsetup.is_gpu_probe_noise(line) and logsetup.is_gpu_probe_noise(line + "\n")


@pytest.mark.parametrize("line", KEPT)
def test_other_lines_are_kept(line):
    assert not logsetup.is_gpu_probe_noise(line)


CHILD = """
import os, subprocess, sys
from server import logsetup
proc = logsetup.filter_gpu_probe_noise()
print("filtered" if proc else "unfiltered", flush=True)
# A child process (as a worker would be) inherits the filtered stderr.
subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1])", sys.argv[1]])
sys.stderr.write("parent: last words\\n")
"""


def test_filter_drops_the_noise_of_child_processes_and_keeps_the_rest():
    if logsetup.has_nvidia_driver() or sys.platform == "win32":
        pytest.skip("the filter is only installed on a POSIX machine without an NVIDIA driver")
    text = "".join(line + "\n" for pair in zip(NOISE, KEPT) for line in pair) + "no newline at the end"
    r = subprocess.run([sys.executable, "-c", CHILD, text], capture_output=True, text=True, timeout=60,
                       cwd=logsetup.__file__.rsplit("/server/", 1)[0])
    assert r.stdout == "filtered\n"
    lines = r.stderr.splitlines()
    # The child's last line has no newline: the parent's line follows it on the same line.
    assert lines == KEPT[:len(NOISE)] + ["no newline at the endparent: last words"], r.stderr


def test_a_message_with_line_breaks_stays_one_line_and_cannot_pose_as_an_escape():
    import logging

    from server.logsetup import LOG_FORMAT, OneLineFormatter, one_line
    assert one_line("ok /v1/models/m") == "ok /v1/models/m"
    assert one_line("a\nb\rc\td\x1b[31m\x85\u2028") == "a\\nb\\rc\\td\\x1b[31m\\x85\\u2028"
    assert one_line("x\\ny") == "x\\\\ny"  # a backslash-n the client typed is not an escaped newline
    record = logging.LogRecord("server.rest", logging.DEBUG, __file__, 1, "%s -> 404", ("/v1/x\n2026 FORGED",), None)
    line = OneLineFormatter(LOG_FORMAT).format(record)
    assert "\n" not in line and line.endswith("server.rest: /v1/x\\n2026 FORGED -> 404")
    try:
        raise ValueError("quoted\n2026-12-02 16:00:00,000 99 INFO x: FORGED")
    except ValueError:
        import sys
        record = logging.LogRecord("server", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = OneLineFormatter(LOG_FORMAT).format(record).splitlines()
    assert lines[0].endswith("server: failed") and all(x.startswith("    ") for x in lines[1:])
