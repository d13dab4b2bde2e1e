"""One loaded version of one model: a SavedModel in a TensorFlow session, like TF Serving's bundle.

TF Serving loads every SavedModel (TF1 and TF2 exports alike) into a `Session` and runs a signature
by feeding and fetching the tensors its SignatureDef names. This module does the same with
`tf.compat.v1.saved_model.load`, which also serves TF1 models that `tf.saved_model.load` rejects
(reference variables, as in the `saved_model_counter` test model).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading

import numpy as np

from . import errors
from .options import Options
from .servable_api import ServableLike
from .signatures import INIT_OP_SIGNATURE, Signature, get_signature, signatures_only
from .tf_status import error_from_exception
from .validation import defaults_of, explain_failure

log = logging.getLogger("server.servable")

SERVE_TAG = "serve"

def _tf():
    # TensorFlow is imported on first use so that `python -m server --help` answers at once.
    import tensorflow as tf
    return tf


class Servable(ServableLike):
    """A SavedModel version loaded in its own graph and session."""

    kind = "session"

    def __init__(self, name: str, version: int, path: str, session, meta_graph, run_timeout_ms: int = 0):
        self.name = name
        self.version = version
        self.path = path
        self._session = session
        self._meta_graph = meta_graph
        self.signatures: dict[str, Signature] = {
            key: _with_model_dtypes(Signature.from_proto(key, sig), session.graph)
            for key, sig in sorted(meta_graph.signature_def.items())
            if key != INIT_OP_SIGNATURE
        }
        # SignatureDef defaults, fed for inputs a request leaves out (as TF Serving's GetInputValues).
        self._defaults = {key: {k: _tf().make_ndarray(v) for k, v in defaults_of(sig).items()}
                          for key, sig in self.signatures.items()}
        self._run_options = None
        if run_timeout_ms > 0:  # --rest_api_timeout_in_ms: a longer run ends as DEADLINE_EXCEEDED (504)
            self._run_options = _tf().compat.v1.RunOptions(timeout_in_ms=run_timeout_ms)
        self._callables: dict[tuple, object] = {}
        self._callables_lock = threading.Lock()

    def signature_def_map(self):
        """Every SignatureDef of the serving MetaGraph (the official protos), for the metadata API."""
        return self._meta_graph.signature_def

    def get_signature(self, name: str) -> Signature:
        return get_signature(self.signatures, name)

    def _callable(self, signature: Signature, input_keys: tuple[str, ...], output_keys: tuple[str, ...]):
        key = (signature.name, input_keys, output_keys)
        fn = self._callables.get(key)
        if fn is None:
            with self._callables_lock:
                fn = self._callables.get(key)
                if fn is None:
                    fn = self._make_callable(
                        [signature.inputs[k].tensor_name for k in input_keys],
                        [signature.outputs[k].tensor_name for k in output_keys],
                    )
                    self._callables[key] = fn
        return fn

    def _make_callable(self, feeds: list[str], fetches: list[str]):
        """A callable that runs one feed/fetch signature of the graph with the least Python per call.

        `Session._make_callable_from_options` (a CallableOptions proto, as TF Serving's C++ builds for
        each signature) goes straight to TF_SessionRunCallable; `make_callable` with feeds would go
        through `Session.run` and its feed-dict handling on every call (measured: ~2x slower here).
        """
        from tensorflow.core.protobuf import config_pb2
        opts = config_pb2.CallableOptions(feed=feeds, fetch=fetches)
        if self._run_options is not None:
            opts.run_options.CopyFrom(self._run_options)
        make = getattr(self._session, "_make_callable_from_options", None)
        if make is not None:
            return make(opts)
        graph = self._session.graph  # fallback for a TensorFlow without the private fast path
        fn = self._session.make_callable([graph.get_tensor_by_name(t) for t in fetches],
                                         [graph.get_tensor_by_name(t) for t in feeds],
                                         accept_options=self._run_options is not None)
        if self._run_options is None:
            return fn
        return lambda *args: fn(*args, options=self._run_options)

    def run(self, signature: Signature, inputs: dict[str, np.ndarray],
            output_keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Feed `inputs` (validated by validation.validate_inputs), fetch every output (or `output_keys`).

        The tensors are fed as TF Serving feeds them, whatever the shapes the signature declares;
        when TensorFlow refuses them, its message is followed by what the signature declares.
        """
        if self._session is None:
            raise errors.unavailable(f"Servable {self.name} version {self.version} is unloaded")
        feeds = inputs
        defaults = self._defaults.get(signature.name)
        if defaults and len(inputs) < len(signature.inputs):
            feeds = {**{k: v for k, v in defaults.items() if k not in inputs}, **inputs}
        keys = tuple(sorted(feeds))
        outs = tuple(output_keys) if output_keys else tuple(signature.outputs)  # none: all, as TF Serving
        try:
            fn = self._callable(signature, keys, outs)
            values = fn(*[feeds[k] for k in keys])
        except Exception as exc:  # a failure inside the model: a JSON error, never a dropped connection
            raise explain_failure(error_from_exception(exc, ""), inputs, signature) from exc
        return {k: np.asarray(v) for k, v in zip(outs, values)}

    def unload(self) -> None:
        session, self._session = self._session, None
        self._callables.clear()
        if session is not None:
            session.close()


def _with_model_dtypes(signature: Signature, graph) -> Signature:
    """Note, for each input, the dtype its graph tensor takes where the SignatureDef declares another
    (TensorFlow checks fed tensors against the graph; TF Serving's half_plus_three declares its
    serialized-example input as float)."""
    inputs = {}
    for key, spec in signature.inputs.items():
        try:
            takes = graph.get_tensor_by_name(spec.tensor_name).dtype.as_datatype_enum
        except (KeyError, ValueError):
            takes = spec.dtype
        inputs[key] = spec if takes == spec.dtype else dataclasses.replace(spec, model_dtype=int(takes))
    return dataclasses.replace(signature, inputs=inputs)


# -- loading ---------------------------------------------------------------------------------

def session_config(options: Options, name: str = "", version: int = 0):
    """The session's ConfigProto as TF Serving builds it (model_servers/server.cc: the file's ConfigProto,
    the GPU memory fraction, then the thread counts; with --platform_config_file its ConfigProto as it is;
    then saved_model_bundle_factory.cc for --mixed_precision and the session metadata)."""
    from tensorflow.core.protobuf import config_pb2
    proto = config_pb2.ConfigProto()
    if options.session_config:
        proto.ParseFromString(options.session_config)
    if options.platform is None:
        proto.gpu_options.per_process_gpu_memory_fraction = options.per_process_gpu_memory_fraction
        intra, inter = options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism
        if intra != 0 or inter != 0:
            # Nonzero rather than TF Serving's > 0: a negative inter-op count runs ops in the caller's thread.
            proto.intra_op_parallelism_threads = intra
            proto.inter_op_parallelism_threads = inter
        else:
            proto.intra_op_parallelism_threads = options.tensorflow_session_parallelism
            proto.inter_op_parallelism_threads = options.tensorflow_session_parallelism
    mixed = options.mixed_precision
    if mixed == "bfloat16":
        log.info("Running inference with bfloat16 auto mixed precision")
        from tensorflow.core.protobuf import rewriter_config_pb2
        proto.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    elif mixed:
        log.warning("%s auto mixed precision is not supported. Valid option: bfloat16", mixed)
    if options.platform is not None and options.platform.enable_session_metadata:
        proto.experimental.session_metadata.name = name
        proto.experimental.session_metadata.version = version
    return proto


def load_servable(name: str, version: int, path: str, options: Options | None = None, **changes) -> ServableLike:
    """Load one version folder as TF Serving's SavedModelBundleFactory does. Raises ServingError with
    TF's status code when it cannot be loaded.

    options: the server's Options (default: every flag's default); keyword `changes` replace fields of
    it (e.g. prefer_tflite_model=True). `model.tflite` is served when prefer_tflite_model is set and the
    file is there (server/tflite_servable.py). A SavedModel runs in a TensorFlow session, as in TF
    Serving; one whose signatures could never run there (functions reading variables the session never
    restores, as `tf.saved_model.save` writes for Keras 3 models) is served through TensorFlow's
    object-graph loader instead (server/function_servable.py), or refused with a status that says how
    to re-export it.
    """
    options = (options or Options()).replace(**changes) if changes else (options or Options())
    platform = options.platform
    if not os.path.isdir(path):
        raise errors.not_found(f"Could not find base path {path} for servable {name} with error Not found")
    if options.prefer_tflite_model and os.path.exists(os.path.join(path, "model.tflite")):
        from .tflite_servable import load_tflite
        return load_tflite(name, version, path, num_pools=options.num_tflite_pools,
                           interpreters_per_pool=options.num_tflite_interpreters_per_pool)
    _check_saved_model_dir(path)
    if platform is not None and platform.enable_saved_model_config:
        # session_bundle/oss/session_bundle_util.cc: LoadSessionBundleOrSavedModelBundle
        raise errors.unimplemented("Saved model config functionality is not implemented.")
    tags = list(options.saved_model_tags) or [SERVE_TAG]
    tf = _tf()
    graph = tf.Graph()
    session = tf.compat.v1.Session(platform.session_target if platform is not None else "", graph=graph,
                                   config=session_config(options, name, version))
    try:
        with graph.as_default(), _load_run_options(
                session, platform.session_run_load_threadpool_index if platform is not None else -1):
            meta_graph = tf.compat.v1.saved_model.load(session, tags, path)
        unrestored = unrestored_variables(meta_graph, session)
    except BaseException as exc:
        session.close()
        raise error_from_exception(exc, "") from exc
    if unrestored:
        session.close()
        from .function_servable import load_functions
        return load_functions(name, version, path, tuple(tags), unrestored)
    if options.remove_unused_fields_from_bundle_metagraph:
        meta_graph = signatures_only(meta_graph)
    # --rest_api_timeout_in_ms bounds each model run (TF Serving sets it as the REST request's RunOptions).
    return Servable(name, version, path, session, meta_graph, run_timeout_ms=options.rest_api_timeout_in_ms)


@contextlib.contextmanager
def _load_run_options(session, thread_pool_index: int):
    """While the SavedModel loads, run its restore and init ops with RunOptions.inter_op_thread_pool =
    `thread_pool_index` (one of the ConfigProto's session_inter_op_thread_pool), as TF Serving's
    GetRunOptions does for session_run_load_threadpool_index; -1: as usual."""
    if thread_pool_index < 0:
        yield
        return
    run = session.run
    options = _tf().compat.v1.RunOptions(inter_op_thread_pool=thread_pool_index)
    session.run = lambda fetches, feed_dict=None, **kw: run(fetches, feed_dict, options=kw.pop("options", options),
                                                           **kw)
    try:
        yield
    finally:
        del session.run


def _check_saved_model_dir(path: str) -> None:
    """TF Serving's LoadSessionBundleOrSavedModelBundle: the old SessionBundle format is refused, and a
    folder without saved_model.pb(txt) is not a SavedModel."""
    if os.path.exists(os.path.join(path, "export.meta")):
        raise errors.unimplemented(
            f"Session Bundle is deprecated and removed. ({path} holds an export.meta: a SessionBundle export, "
            f"from TensorFlow 1's old exporter; export the model as a SavedModel to serve it)")
    if not any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise errors.not_found("Specified file path does not appear to contain a SavedModel bundle (should have a "
                               f"file called `saved_model.pb`)\nSpecified file path: {path}")


def unrestored_variables(meta_graph, session) -> list[str]:
    """The resource variables the signatures read that are still uninitialized after the SavedModel's
    restore and init ops ran: such signatures fail on every request ("Could not find variable").
    `tf.saved_model.save` of a Keras 3 model writes such SavedModels (its functions read variables
    that the TF1 restore op never assigns)."""
    tf = _tf()
    graph = session.graph
    wanted = []
    for key, sig in meta_graph.signature_def.items():
        if key == INIT_OP_SIGNATURE:
            continue
        for info in sig.outputs.values():
            try:
                wanted.append(graph.get_tensor_by_name(info.name))
            except (KeyError, ValueError):
                continue
    handles, seen, stack = [], set(), [t.op for t in wanted]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type == "VarHandleOp":
            handles.append(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    if not handles:
        return []
    with graph.as_default(), tf.name_scope("server_variable_check"):
        checks = [tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles]
    done = session.run(checks)
    return sorted(op.name for op, ok in zip(handles, done) if not ok)
