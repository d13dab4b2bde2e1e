"""TensorFlow's exceptions as ServingErrors: the status code TensorFlow gave, a message for the client."""
from __future__ import annotations

import re

from . import errors

_TF_CODE_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


def error_from_exception(exc: BaseException, context: str) -> errors.ServingError:
    """Turn whatever TensorFlow raised into a ServingError with the matching status code."""
    if isinstance(exc, errors.ServingError):
        return exc
    import tensorflow as tf
    if isinstance(exc, tf.errors.OpError):
        code = _TF_CODE_NAMES.get(exc.error_code, "UNKNOWN")
        message = clean_tf_message(exc.message)
    elif isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and "does not exist" in str(exc)):
        code, message = "NOT_FOUND", str(exc)
    elif isinstance(exc, (ValueError, TypeError)):
        code, message = "INVALID_ARGUMENT", str(exc)
    else:
        code, message = "UNKNOWN", f"{type(exc).__name__}: {exc}"
    return errors.ServingError(code, f"{context}{message}" if context else message)


def clean_tf_message(message: str) -> str:
    """TensorFlow's message without the graph-node trailer, eager mode's "Graph execution error" and
    "Detected at node" preamble and its "[Op:...]" suffix."""
    message = message.split("\n\t [[")[0].split("\n\t[[")[0]
    lines = [line for line in message.splitlines() if line.strip()]
    if lines and lines[0].startswith("Graph execution error"):
        lines = lines[1:]
        while lines and (lines[0].startswith("Detected at node") or lines[0].startswith("<stack traces")):
            lines = lines[1:]
    text = " ".join(line.strip() for line in lines) or message.strip()
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text).strip()
