"""A SavedModel served through TensorFlow's object-graph loader, for versions a session cannot run.

`tf.saved_model.save(model, path)` on a Keras 3 model writes a SavedModel whose signature functions
read variables that the TF1 restore op never assigns: TF Serving (2.15-2.17) and a session-based
loader load it and then answer every request with "Could not find variable ...".
`tf.saved_model.load` restores those variables through the object graph, so the same signatures run
when called as concrete functions. The servable keeps the MetaGraph's SignatureDefs for the
metadata API and the request checks, and calls `loaded.signatures[name](**inputs)` to run them.

Differences from a session servable: TensorFlow's process-wide thread pools (the session's thread
settings do not apply) and no per-run timeout (an eager call cannot be cancelled).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from . import errors
from .servable_api import ServableLike
from .signatures import INIT_OP_SIGNATURE, Signature, get_signature, signatures_only
from .tf_status import error_from_exception
from .validation import defaults_of, explain_failure

log = logging.getLogger("server.servable")

RE_EXPORT_HINT = (
    "Re-export the model for serving: with Keras 3, `model.export(path)` (format \"tf_saved_model\"), "
    "or `tf.keras.export.ExportArchive` with the endpoints to serve")


class FunctionServable(ServableLike):
    """One version whose signatures run as the object graph's concrete functions."""

    kind = "object_graph"

    def __init__(self, name: str, version: int, path: str, loaded, meta_graph):
        self.name = name
        self.version = version
        self.path = path
        self._loaded = loaded
        self._meta_graph = meta_graph
        self._functions = {key: loaded.signatures[key] for key in loaded.signatures.keys()}
        self.signatures: dict[str, Signature] = {
            key: Signature.from_proto(key, sig)
            for key, sig in sorted(meta_graph.signature_def.items())
            if key != INIT_OP_SIGNATURE and key in self._functions
        }
        import tensorflow as tf
        self._defaults = {key: {k: tf.make_ndarray(v) for k, v in defaults_of(sig).items()}
                          for key, sig in self.signatures.items()}

    def signature_def_map(self):
        return self._meta_graph.signature_def

    def get_signature(self, name: str) -> Signature:
        return get_signature(self.signatures, name)

    def run(self, signature: Signature, inputs: dict[str, np.ndarray],
            output_keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        fn = self._functions.get(signature.name) if self._loaded is not None else None
        if fn is None:
            raise errors.unavailable(f"Servable {self.name} version {self.version} is unloaded")
        feeds = inputs
        defaults = self._defaults.get(signature.name)
        if defaults and len(inputs) < len(signature.inputs):
            feeds = {**{k: v for k, v in defaults.items() if k not in inputs}, **inputs}
        import tensorflow as tf
        try:
            out = fn(**{k: tf.convert_to_tensor(v) for k, v in feeds.items()})
        except Exception as exc:
            raise explain_failure(error_from_exception(exc, ""), inputs, signature) from exc
        keys = tuple(output_keys) if output_keys else tuple(signature.outputs)  # none: all, as TF Serving
        missing = [k for k in keys if k not in out]
        if missing:
            raise errors.internal(f"Signature {signature.name} did not return outputs {missing}")
        return {k: np.asarray(out[k]) for k in keys}

    def unload(self) -> None:
        self._loaded, self._functions = None, {}


def load_functions(name: str, version: int, path: str, tags, unrestored: list[str]) -> FunctionServable:
    """Load `path` with tf.saved_model.load; raise FAILED_PRECONDITION (never a version that reports
    AVAILABLE and fails every request) when that is impossible."""
    import tensorflow as tf
    shown = ", ".join(unrestored[:5]) + (f" and {len(unrestored) - 5} more" if len(unrestored) > 5 else "")
    what = (f"The SavedModel at {path} cannot run in a TensorFlow session: its signatures read variables "
            f"that its checkpoint never restores ({shown}), as `tf.saved_model.save` writes for Keras 3 "
            f"models")
    try:
        full = _meta_graph(path, tags)
    except (OSError, errors.ServingError) as exc:
        raise errors.failed_precondition(f"{what}. {RE_EXPORT_HINT}.") from exc
    if not full.object_graph_def.nodes:  # a TF1 export: tf.saved_model.load would wrap the same session graph
        raise errors.failed_precondition(
            f"{what}, and it has no object graph for TensorFlow's object-graph loader. {RE_EXPORT_HINT}.")
    try:
        loaded = tf.saved_model.load(path, tags=list(tags))
        servable = FunctionServable(name, version, path, loaded, signatures_only(full))
        unready = _uninitialized_variables(servable)
    except Exception as exc:
        why = error_from_exception(exc, "").message
        raise errors.failed_precondition(
            f"{what}, and TensorFlow's object-graph loader cannot load it either ({why}). {RE_EXPORT_HINT}."
        ) from exc
    if not servable.signatures:
        raise errors.failed_precondition(
            f"{what}, and the object graph has none of its signatures as functions. {RE_EXPORT_HINT}.")
    if unready:
        raise errors.failed_precondition(
            f"{what}, and TensorFlow's object-graph loader leaves variables uninitialized too "
            f"({', '.join(unready[:5])}). {RE_EXPORT_HINT}.")
    log.warning("%s. Serving servable %s version %d through TensorFlow's object-graph loader "
                "(tf.saved_model.load) instead of a session.", what, name, version)
    return servable


def _uninitialized_variables(servable: FunctionServable) -> list[str]:
    names = set()
    for key in servable.signatures:
        for variable in servable._functions[key].variables:
            try:
                ready = bool(variable.is_initialized())
            except Exception:  # not a resource variable: nothing to check
                ready = True
            if not ready:
                names.add(variable.name)
    return sorted(names)


def _meta_graph(path: str, tags):
    """The MetaGraphDef with exactly `tags`, read from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    raise errors.not_found(f"MetaGraphDef with tags {','.join(tags)} not found in {path}")
