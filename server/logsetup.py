"""The server's log: one format for the parent and every worker, TensorFlow's chatter kept out."""
from __future__ import annotations

import logging
import os
import sys


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow's own chatter stays out of the server log unless it is an error.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
