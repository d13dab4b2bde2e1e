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


LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

# What a client may put into a message (a URL path, a model name, a feature name) and that would end or
# fake a log line: C0 controls, DEL, C1 controls (NEL among them) and Unicode's line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def one_line(text: str) -> str:
    """`text` with every character that could end or fake a log line escaped (\\n, \\x1b, \\u2028, ...),
    and backslashes doubled, so that an escaped sequence in the input cannot pose as an escape."""
    if _UNSAFE.search(text) is None and "\\" not in text:
        return text
    return _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))


class OneLineFormatter(logging.Formatter):
    """One record, one line: the message (with whatever a client put into it) is escaped; a traceback
    follows on lines of its own, each indented."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        # An exception's text may quote a request too: every line of a traceback is indented, so none
        # of them can pose as a line of the log.
        return "\n".join("    " + line for line in super().formatException(ei).splitlines())


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
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
