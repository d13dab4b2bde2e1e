"""JSON values converted as TF Serving converts them, shared by predict and tf.Example decoding.

- `format_error(doc, text)`: the "JSON Value: <value> <text>" error that prints the request;
- `is_lossless` / `lossy_error`: TF Serving's IsLosslessDecimal and its "without loss of precision" error;
- `b64_decode`: absl's Base64Unescape (standard alphabet, padding optional).
"""
from __future__ import annotations

import base64
import math
from typing import Any

from ..errors import ServingError, invalid_argument
from .json_writer import FLT_MAX, value_to_string


def format_error(doc: Any, text: str) -> ServingError:
    return invalid_argument(f"JSON Value: {value_to_string(doc)} {text}")


def lossy_error(v: Any, target: str) -> ServingError:
    return invalid_argument(f"Cannot convert JSON value: {value_to_string(v)} to {target} "
                            f"without loss of precision.")


def is_lossless(v: Any, single: bool) -> bool:
    """TF Serving's IsLosslessDecimal<float|double> for a JSON number."""
    if type(v) is int and -(1 << 63) <= v < (1 << 64):
        return abs(v) <= ((1 << 24) - 1 if single else (1 << 53) - 1)
    d = float(v)
    if not math.isfinite(d):
        return True
    return (-FLT_MAX <= d <= FLT_MAX) if single else True


def b64_decode(text: str) -> bytes:
    """absl::Base64Unescape: standard alphabet, padding optional; ValueError when not base64."""
    raw = text.encode("ascii")
    pad = (-len(raw)) % 4
    if pad == 3:
        raise ValueError("bad length")
    return base64.b64decode(raw + b"=" * pad, validate=True)
