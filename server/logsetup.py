"""The server's log: one format for the parent and every worker, TensorFlow's chatter kept out.

TensorFlow probes for CUDA when it starts, before its own log settings apply, so on a machine without
an NVIDIA driver every worker printed "Could not find cuda drivers on your machine, GPU will not be
used." and "failed call to cuInit: ..." into the server log (and, TF_CPP_MIN_LOG_LEVEL not yet in
force, the informational "oneDNN custom operations are on" line). `filter_gpu_probe_noise()` (called
by the CLI before the workers start, only where there is no NVIDIA driver) sends the process's
stderr, which the workers inherit, through a small filter process that drops exactly those lines
(and absl's "All log messages before absl::InitializeLog() ..." preamble); every other line passes
unchanged, errors included. The filter runs in its own session and ends when the last writer exits, so nothing
written before a crash is lost.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import sys

GPU_PROBE_NOISE = re.compile(
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\."
    r"|cuda_(?:platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit: "
    r"|port\.cc:\d+\] oneDNN custom operations are on\. "
    r"|^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$")

# Runs in the filter process: stdin (the server's stderr) to its own stderr, less the noise.
_FILTER = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
noise = re.compile(sys.argv[1].encode())
out = sys.stderr.buffer
for line in sys.stdin.buffer:
    if not noise.search(line.rstrip(b"\\r\\n")):
        out.write(line)
        out.flush()
"""


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow's own chatter stays out of the server log unless it is an error.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def is_gpu_probe_noise(line: str) -> bool:
    return GPU_PROBE_NOISE.search(line.rstrip("\r\n")) is not None


def has_nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def filter_gpu_probe_noise() -> subprocess.Popen | None:
    """On a POSIX machine without an NVIDIA driver, route fd 2 through the noise filter; returns the
    filter process (None where nothing was done)."""
    if os.name != "posix" or has_nvidia_driver():
        return None
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _FILTER, GPU_PROBE_NOISE.pattern], stdin=read_end,
                                stdout=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(read_end)
    os.close(write_end)
    return proc
