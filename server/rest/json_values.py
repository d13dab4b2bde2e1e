"""JSON values converted as TF Serving converts them, shared by predict and tf.Example decoding.

- `format_error(doc, text)`: the "JSON Value: <value> <text>" error that prints the request;
- `b64_decode`: absl's Base64Unescape (standard alphabet, padding optional).
"""
from __future__ import annotations

import base64
from typing import Any

from ..errors import ServingError, invalid_argument
from .json_writer import value_to_string


def format_error(doc: Any, text: str) -> ServingError:
    return invalid_argument(f"JSON Value: {value_to_string(doc)} {text}")


def b64_decode(text: str) -> bytes:
    """absl::Base64Unescape: standard alphabet, padding optional; ValueError when not base64."""
    raw = text.encode("ascii")
    pad = (-len(raw)) % 4
    if pad == 3:
        raise ValueError("bad length")
    return base64.b64decode(raw + b"=" * pad, validate=True)
