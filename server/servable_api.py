"""What every loaded version offers the rest of the server, whatever its format: the interface that
servable.Servable (a SavedModel in a TensorFlow session), function_servable.FunctionServable (its
object graph) and tflite_servable.TfLiteServable (a TensorFlow Lite model) share. The data plane,
the warm-up, batching and the metadata API call only these."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .signatures import Signature


@runtime_checkable
class ServableLike(Protocol):
    """One loaded version of one model."""

    kind: str                          # "session", "object_graph" or "tflite": how it runs (logs, tests)
    name: str
    version: int
    path: str
    signatures: dict[str, Signature]   # by signature key

    def signature_def_map(self) -> Any:
        """Every SignatureDef (the official protos, by key), for the metadata API."""

    def get_signature(self, name: str) -> Signature:
        """The signature called `name` ("" for the default), or ServingError as TF Serving answers."""

    def run(self, signature: Signature, inputs: dict[str, np.ndarray],
            output_keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Run `signature` on validated inputs; its outputs (or only `output_keys`) by alias."""

    def unload(self) -> None:
        """Free what the version holds; no run starts afterwards."""
