"""Versions, their states, labels and status: what the model manager (lifecycle.py) knows of each version,
the snapshot requests look versions up in (`Routes`, rebuilt at every state change), TF Serving's rules
for version labels (ServerCore) and the GetModelStatusResponse it answers with.

`LabelsAndStatus` is the model manager's part that reads and publishes this state; the manager's own
thread changes it (lifecycle.ModelManager._set), always with its lock held.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from tensorflow_serving.apis import get_model_status_pb2

from .config import ModelSettings
from .errors import ServingError

log = logging.getLogger("server.lifecycle")

State = get_model_status_pb2.ModelVersionStatus
START, LOADING, AVAILABLE, UNLOADING, END = State.START, State.LOADING, State.AVAILABLE, State.UNLOADING, State.END


@dataclass
class Version:
    name: str
    version: int
    path: str
    state: int = START
    error: ServingError | None = None
    servable: object = None
    # One entry per request holding this version: list.append/pop are atomic, no lock needed.
    holders: list = field(default_factory=list)
    fingerprint: tuple | None = None  # the files as they were at the last load attempt

    @property
    def refs(self) -> int:
        return len(self.holders)


@dataclass(frozen=True)
class Routes:
    """What requests may use of one model, as of the last state change: its AVAILABLE versions,
    the newest of them, and its version labels."""
    available: dict[int, Version]
    latest: Version | None
    labels: dict[str, int]


def label_version(entry: Routes | None, label: str) -> int:
    """The version a model's label names (`entry`: the model's published Routes, None if not served)."""
    if entry is None or label not in entry.labels:
        raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
    return entry.labels[label]


class LabelsAndStatus:
    """The labels, the published routes and the status of a model manager's versions."""

    _settings: dict[str, ModelSettings]
    _versions: dict[str, dict[int, Version]]
    _routes: dict[str, Routes]
    _labels: dict[str, dict[str, int]]
    _pending_labels: dict[str, dict[str, int]]
    _allow_unavailable_labels: bool
    _cond: threading.Condition

    def _publish(self) -> None:
        """Rebuild what requests look versions up in (caller holds the lock)."""
        routes = {}
        for name, settings in self._settings.items():
            available = {n: v for n, v in self._versions.get(name, {}).items() if v.state == AVAILABLE}
            latest = available[max(available)] if available else None
            # Labels still waiting for their model to load are known already: they answer UNAVAILABLE.
            labels = {**self._labels.get(name, {}), **self._pending_labels.get(name, {})}
            routes[name] = Routes(available, latest, labels)
        self._routes = routes

    # ------------------------------------------------------------------ labels

    def _label_allowed(self, name: str, label: str, version: int, in_force: dict[str, int]) -> bool:
        v = self._versions.get(name, {}).get(version)
        if v is not None and v.state == AVAILABLE:
            return True
        # TF Serving: only a label not in use may name a version that is not available.
        return self._allow_unavailable_labels and label not in in_force

    def _update_labels(self, models: list[ModelSettings]) -> None:
        """A new config's labels (caller holds the lock): models that serve already get theirs now,
        all or nothing, by TF Serving's rule; models still loading get theirs once their versions are
        AVAILABLE."""
        new_labels, pending, refused = {}, {}, False
        for m in models:
            if not any(v.state == AVAILABLE for v in self._versions.get(m.name, {}).values()):
                pending[m.name] = dict(m.labels)
                continue
            in_force = self._labels.get(m.name, {})
            new_labels[m.name] = dict(m.labels)
            for label, version in sorted(m.labels.items()):
                if not refused and not self._label_allowed(m.name, label, version, in_force):
                    log.error("Request to assign label to version %d of model %s, which is not currently "
                              "available for inference (label %s); the labels in force are kept",
                              version, m.name, label)
                    refused = True
        if refused:
            new_labels = {name: self._labels.get(name, {}) for name in new_labels}
        self._labels = new_labels
        self._pending_labels = pending
        self._apply_pending_labels()

    def _apply_pending_labels(self) -> None:
        """Put in force every waiting label that may be (caller holds the lock or is the constructor)."""
        for name, waiting in self._pending_labels.items():
            in_force = self._labels.setdefault(name, {})
            for label, version in list(waiting.items()):
                if self._label_allowed(name, label, version, in_force):
                    in_force[label] = version
                    del waiting[label]

    def status(self, name: str, version: int | None = None,
               label: str | None = None) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatusResponse as TF Serving builds it (newest version first)."""
        response = get_model_status_pb2.GetModelStatusResponse()
        with self._cond:
            if label is not None:
                version = label_version(self._routes.get(name), label)
            versions = self._versions.get(name, {})
            if version is not None:
                if version not in versions:
                    raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
                chosen = [versions[version]]
            else:
                if not versions:
                    raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
                chosen = sorted(versions.values(), key=lambda v: -v.version)
            for v in chosen:
                entry = response.model_version_status.add()
                entry.version = v.version
                entry.state = v.state
                entry.status.SetInParent()  # TF Serving always reports a status, "OK" included
                if v.error is not None:
                    entry.status.error_code = code_number(v.error.code)
                    entry.status.error_message = v.error.message
        return response

    def models(self) -> list[str]:
        with self._cond:
            return sorted(self._settings)

    def available_versions(self, name: str) -> list[int]:
        with self._cond:
            return sorted(n for n, v in self._versions.get(name, {}).items() if v.state == AVAILABLE)


def code_number(code: str) -> int:
    from tensorflow.core.protobuf import error_codes_pb2
    return error_codes_pb2.Code.Value(code)
