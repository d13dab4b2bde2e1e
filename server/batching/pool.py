"""The batchers of a server: one Batcher per (model, version, signature), living and dying with its version.

`batcher_for(servable, signature)` returns `Batcher.submit` for signatures whose inputs and outputs are
all batched along dimension 0, else None (they run directly, as TF Serving runs signatures it cannot
batch). A version's batchers are made on first use and closed when the version ends (`version_ended`,
called from the model manager's state listener): their threads stop, and nothing here keeps the
unloaded servable alive. A version loaded again under the same name and number gets fresh batchers.

With `--enable_per_model_batching_parameters`, `version_loaded(servable)` (called right after a load)
reads the version folder's `batching_params.pbtxt`; a bad file fails that version's load.
"""
from __future__ import annotations

import threading
import weakref

from ..errors import ServingError, unavailable
from .parameters import BatchingConfigError, BatchingParameters, per_model_parameters
from .scheduler import Batcher


def batchable(signature) -> bool:
    """Whether every input and output of the signature has a leading dimension of any size."""
    specs = list(signature.inputs.values()) + list(signature.outputs.values())
    return bool(signature.inputs) and all(s.shape is not None and len(s.shape) >= 1 and s.shape[0] == -1
                                          for s in specs)


class BatcherPool:
    def __init__(self, params: BatchingParameters | None = None, per_model: bool = False):
        self.params = params or BatchingParameters()
        self.per_model = per_model
        self._lock = threading.Lock()
        # (name, version, signature name) -> (servable, Batcher or None); read without the lock.
        self._batchers: dict[tuple, tuple[object, Batcher | None]] = {}
        # (name, version) -> that version's own parameters (--enable_per_model_batching_parameters).
        self._version_params: dict[tuple, BatchingParameters] = {}
        # Servables whose version ended: never given a batcher again (a late caller runs directly).
        self._ended: weakref.WeakSet = weakref.WeakSet()
        self._closed = False

    # -- requests ---------------------------------------------------------------------------

    def batcher_for(self, servable, signature):
        key = (servable.name, servable.version, signature.name)
        entry = self._batchers.get(key)
        if entry is not None and entry[0] is servable:
            return entry[1].submit if entry[1] is not None else None
        with self._lock:
            entry = self._batchers.get(key)
            if entry is None or entry[0] is not servable:
                if self._closed:
                    raise unavailable("The batch scheduler is shutting down")
                if servable in self._ended:
                    return None
                if entry is not None and entry[1] is not None:
                    entry[1].close()
                batcher = None
                if batchable(signature):
                    params = self._version_params.get((servable.name, servable.version), self.params)
                    batcher = Batcher(_runner(servable, signature), params)
                entry = self._batchers[key] = (servable, batcher)
        return entry[1].submit if entry[1] is not None else None

    # -- the version lifecycle ------------------------------------------------------------------

    def version_loaded(self, servable) -> None:
        """A version was just loaded: read its own batching parameters when per-model parameters are on.
        Raises ServingError (INVALID_ARGUMENT) for a bad `batching_params.pbtxt`."""
        if not self.per_model:
            return
        try:
            params = per_model_parameters(servable.path, self.params)
        except BatchingConfigError as e:
            raise ServingError("INVALID_ARGUMENT", str(e)) from None
        key = (servable.name, servable.version)
        with self._lock:
            if params is None:
                self._version_params.pop(key, None)
            else:
                self._version_params[key] = params

    def version_ended(self, name: str, version: int) -> None:
        """A version is unloaded (or failed): close its batchers and forget its servable."""
        with self._lock:
            keys = [k for k in self._batchers if k[0] == name and k[1] == version]
            entries = [self._batchers.pop(k) for k in keys]
            self._version_params.pop((name, version), None)
            for servable, _ in entries:
                self._ended.add(servable)
        for _, batcher in entries:
            if batcher is not None:
                batcher.close()

    def live_batchers(self) -> int:
        """How many batchers are running (for tests and metrics)."""
        return sum(1 for _, b in list(self._batchers.values()) if b is not None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._batchers.values())
            self._batchers.clear()
            self._version_params.clear()
        for _, batcher in entries:
            if batcher is not None:
                batcher.close()


def _runner(servable, signature):
    """The batch function of one signature. It holds the servable only as long as the batcher lives."""
    def run(inputs):
        return servable.run(signature, inputs)
    return run
