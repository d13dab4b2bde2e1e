"""A TensorFlow Lite model (`model.tflite` in a version folder), served as TF Serving's TfLiteSession.

With --prefer_tflite_model, TF Serving loads `model.tflite` instead of the SavedModel
(servables/tensorflow/saved_model_bundle_factory.cc) and runs it in a pool of single-threaded TFLite
interpreters (tflite_session.cc, tflite_interpreter_pool.cc). This module does the same with
TensorFlow's `tf.lite.Interpreter`:

* Signatures: the SignatureDefs stored in the model's `signature_defs_metadata` (what TF Serving
  reads), their tensor names matched with the model's tensors, also under TFLite's legacy names
  without ":0"; else the model's own TFLite signatures (signature runners); else, as TF Serving,
  one synthesised `serving_default` (predict) whose inputs and outputs are the model's input and
  output tensors, keyed by their names without ":N", with the shapes the model declares.
* Runs: each request takes an interpreter from the pool (--num_tflite_pools interpreters; TF
  Serving's default is one per core), resizes the input tensors to what arrived, invokes it and
  copies the outputs. With --num_tflite_interpreters_per_pool > 1, concurrent requests are merged
  along the first dimension into batches, as TF Serving's TfLiteSession scheduler does.
* TF Serving registers TFLite's ParseExample custom op; TensorFlow's Python interpreter has no such
  op, so a ParseExample(V2) node that reads a model input is run here by TensorFlow's own
  ParseExampleV2 kernel, with the keys, defaults and shapes stored in the model, and the rest of the
  model by the TFLite interpreter.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import warnings
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from . import errors
from .servable_api import ServableLike
from .signatures import PREDICT_METHOD, Signature, get_signature
from .tf_status import error_from_exception
from .validation import explain_failure

log = logging.getLogger("server.servable")

DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_DEFS_METADATA = "signature_defs_metadata"
TFLITE_MODEL_FILE = "model.tflite"  # saved_model_bundle_factory.cc: kTfLiteModelFilename
INITIAL_BATCH_SIZE = 500  # tflite_interpreter_pool.h: kInitialBatchSize
_PARSE_EXAMPLE_OPS = (b"ParseExampleV2", b"ParseExample")

_TF_TYPES = {  # numpy dtype of a TFLite tensor -> TF DataType (tflite_session.cc: TfLiteTypeToTfType)
    np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.uint8): types_pb2.DT_UINT8, np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL, np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.complex64): types_pb2.DT_COMPLEX64, np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.float16): types_pb2.DT_HALF, np.dtype(np.float64): types_pb2.DT_DOUBLE,
}


def _tf_type(np_type) -> int:
    dtype = np.dtype(np_type)
    if dtype.kind in "SUO":
        return types_pb2.DT_STRING
    if dtype not in _TF_TYPES:
        raise errors.internal(f"Unknown TfLite type: {dtype}")
    return _TF_TYPES[dtype]


def _legacy_name(name: str) -> str:
    """TF tensor names end in ':0'; early TFLite converters dropped the suffix."""
    return name.split(":", 1)[0]


def _tensor_info(name: str, np_type, shape) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=name, dtype=_tf_type(np_type))
    for d in shape:
        info.tensor_shape.dim.add(size=int(d))
    return info


class _Prestage:
    """ParseExample nodes that read model inputs, run by TensorFlow before the interpreter runs."""

    def __init__(self, parsers: list):
        self.parsers = parsers  # [(serialized input tensor name, fn, [output tensor names])]

    def run(self, by_name: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf
        out = {}
        for source, fn, names in self.parsers:
            serialized = tf.constant(np.asarray(by_name[source], dtype=object).reshape(-1), tf.string)
            for name, value in zip(names, fn(serialized)):
                out[name] = value.numpy()
        return out


class TfLiteServable(ServableLike):
    """One `model.tflite` version: signatures, a pool of interpreters, the Servable interface."""

    kind = "tflite"

    def __init__(self, name: str, version: int, path: str, model_bytes: bytes, num_pools: int = 1,
                 interpreters_per_pool: int = 1):
        self.name, self.version, self.path = name, version, path
        try:
            probe = _interpreter(model_bytes)  # names, types, shapes; never run
            model = _read_model(model_bytes)
        except Exception as exc:
            raise errors.invalid_argument(f"Cannot build FlatBufferModel from buffer: {exc}") from exc
        inputs, outputs = probe.get_input_details(), probe.get_output_details()
        self._sigdefs, self._runner_keys = _signature_defs(model, probe, inputs, outputs)
        self.signatures: dict[str, Signature] = {
            key: Signature.from_proto(key, sig) for key, sig in sorted(self._sigdefs.items())}
        self._prestage, run_bytes = _split_parse_example(model, model_bytes)
        size = max(1, num_pools)  # tflite_session.cc: at least one interpreter
        self._pool: queue.Queue = queue.Queue()
        self._input_names: dict[int, str] = {}
        self._output_names: dict[int, str] = {}
        if run_bytes is None:  # nothing left for the interpreter: the pool only bounds concurrency
            for _ in range(size):
                self._pool.put(None)
        else:
            try:
                for _ in range(size):
                    interp = _interpreter(run_bytes, num_threads=1)  # one thread each, as TF Serving
                    interp.allocate_tensors()
                    self._pool.put(_Slot(interp))
            except (RuntimeError, ValueError) as exc:
                raise errors.internal(f"Failed to create a TFLite interpreter with the given model: {exc}") from exc
            first = self._pool.queue[0].interp
            self._input_names = {d["index"]: d["name"] for d in first.get_input_details()}
            self._output_names = {d["index"]: d["name"] for d in first.get_output_details()}
        self._batch_limit, self._batch_threads = 0, size
        if interpreters_per_pool > 1:
            model_batch = int(inputs[0]["shape"][0]) if len(inputs) == 1 and len(inputs[0]["shape"]) else -1
            default_allowed = (INITIAL_BATCH_SIZE + interpreters_per_pool - 1) // interpreters_per_pool
            self._batch_limit = model_batch if model_batch > 1 else default_allowed
        self._batchers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def signature_def_map(self):
        return self._sigdefs

    def get_signature(self, name: str) -> Signature:
        return get_signature(self.signatures, name)

    def run(self, signature: Signature, inputs: dict[str, np.ndarray],
            output_keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        if self._closed:
            raise errors.unavailable(f"Servable {self.name} version {self.version} is unloaded")
        keys = tuple(output_keys) if output_keys else tuple(signature.outputs)  # none: all, as TF Serving
        try:
            if self._batch_limit and signature.name not in self._runner_keys:
                outputs = self._batcher(signature).submit(dict(inputs))
            else:
                outputs = self._run_once(signature, inputs)
        except errors.ServingError as exc:
            raise explain_failure(exc, inputs, signature) from None
        except Exception as exc:
            raise explain_failure(error_from_exception(exc, ""), inputs, signature) from exc
        return {k: outputs[k] for k in keys}

    def _run_once(self, signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        slot = self._pool.get()
        try:
            if signature.name in self._runner_keys:
                out = slot.interp.get_signature_runner(signature.name)(**{k: np.asarray(v) for k, v in inputs.items()})
                return {k: np.array(out[k]) for k in signature.outputs}
            values = {signature.inputs[k].tensor_name: np.asarray(v) for k, v in inputs.items()}
            if self._prestage is not None:
                values.update(self._prestage.run(values))
            if slot is not None:
                for index, name in self._input_names.items():
                    if name not in values:
                        raise errors.invalid_argument(f"Missing input TFLite tensor: {name}")
                    slot.set_input(index, values[name])
                try:
                    slot.interp.invoke()
                except RuntimeError as exc:
                    raise errors.internal(f"Failed to invoke TfLite interpreter: {exc}") from exc
                for index, name in self._output_names.items():
                    values[name] = np.array(slot.interp.get_tensor(index))
            return {k: _output(values, spec.tensor_name) for k, spec in signature.outputs.items()}
        finally:
            self._pool.put(slot)

    def _batcher(self, signature: Signature):
        batcher = self._batchers.get(signature.name)
        if batcher is None:
            with self._lock:
                batcher = self._batchers.get(signature.name)
                if batcher is None:
                    batcher = self._batchers[signature.name] = _make_batcher(
                        lambda inputs, _s=signature: self._run_once(_s, inputs),
                        self._batch_limit, self._batch_threads)
        return batcher

    def unload(self) -> None:
        self._closed = True
        with self._lock:
            batchers, self._batchers = self._batchers, {}
        for batcher in batchers.values():
            batcher.close()


def _interpreter(model_bytes: bytes, **kw):
    import tensorflow as tf
    with warnings.catch_warnings():  # TensorFlow 2.21 warns that tf.lite moves to the LiteRT package
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        return tf.lite.Interpreter(model_content=model_bytes, **kw)


class _Slot:
    """One interpreter and the shapes its input tensors have now (resized only when they change)."""

    def __init__(self, interp):
        self.interp = interp
        self.shapes = {d["index"]: tuple(d["shape"]) for d in interp.get_input_details()}

    def set_input(self, index: int, value: np.ndarray) -> None:
        if value.dtype.kind in "OSU":
            value = np.asarray([v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)],
                               dtype=object).reshape(value.shape)
        if self.shapes.get(index) != value.shape:
            try:
                self.interp.resize_tensor_input(index, list(value.shape), strict=False)
                self.interp.allocate_tensors()
            except (RuntimeError, ValueError) as exc:
                raise errors.internal(f"Failed to resize input tensor: {exc}") from exc
            self.shapes[index] = value.shape
        try:
            self.interp.set_tensor(index, value)
        except ValueError as exc:
            raise errors.invalid_argument(str(exc)) from exc


def _output(values: dict, name: str) -> np.ndarray:
    if name in values:
        return values[name]
    if _legacy_name(name) in values:
        return values[_legacy_name(name)]
    raise errors.internal(f"Missing output TFLite tensor: {name}: Unknown tensor '{name}'.")


def _make_batcher(run, limit: int, threads: int):
    """TfLiteSession's scheduler: batches of up to 500 rows, split into runs of `limit` rows, one
    thread per interpreter, at most 100 batches per interpreter waiting."""
    try:
        from .batching.parameters import BatchingParameters
        from .batching.scheduler import Batcher
    except ImportError:
        from .batching import Batcher, BatchingParameters
    params = BatchingParameters(max_batch_size=max(INITIAL_BATCH_SIZE, limit), batch_timeout_micros=0,
                                max_enqueued_batches=threads * 100, num_batch_threads=threads,
                                enable_large_batch_splitting=True, max_execution_batch_size=limit,
                                thread_pool_name="tflite_batch_threads")
    return Batcher(run, params)


# -- the model file ----------------------------------------------------------------------------

def _read_model(model_bytes: bytes):
    from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))


def _name(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _stored_signature_defs(model) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs TF Serving reads (tflite::GetSignatureDefMap): a flexbuffer map of serialized
    SignatureDefs in the model's `signature_defs_metadata`."""
    for entry in model.metadata or []:
        if _name(entry.name) != SIGNATURE_DEFS_METADATA:
            continue
        from flatbuffers import flexbuffers
        data = model.buffers[entry.buffer].data
        try:
            root = flexbuffers.GetRoot(bytes(data.tobytes() if data is not None else b"")).AsMap
            out = {}
            for key, value in zip(root.Keys, root.Values):
                sig = meta_graph_pb2.SignatureDef()
                sig.ParseFromString(bytes(value.AsStringBytes if value.IsString else value.AsBlob))
                out[_name(bytes(key.AsKeyBytes))] = sig
            return out
        except Exception as exc:
            raise errors.invalid_argument(f"Invalid SignatureDefs found in TfLite model: {exc}") from exc
    return {}


def _signature_defs(model, probe, inputs, outputs):
    """(SignatureDefs by key, the keys run through TFLite signature runners)."""
    in_names = {d["name"] for d in inputs}
    out_names = {d["name"] for d in outputs}
    stored = _stored_signature_defs(model)
    if stored:
        for key, sig in stored.items():
            for kind, infos, known in (("input", sig.inputs, in_names), ("output", sig.outputs, out_names)):
                for alias, info in infos.items():
                    if info.name in known:
                        continue
                    if _legacy_name(info.name) in known:
                        info.name = _legacy_name(info.name)
                        continue
                    raise errors.internal(f"Signature {kind} {alias} references an unknown tensor: "
                                          f"Unknown tensor '{info.name}'.")
        return stored, set()
    runners = probe.get_signature_list()
    if runners:
        sigdefs = {}
        for key in runners:
            runner = probe.get_signature_runner(key)
            sig = sigdefs[key] = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
            for alias, d in runner.get_input_details().items():
                sig.inputs[alias].CopyFrom(_tensor_info(d["name"], d["dtype"], d["shape_signature"]))
            for alias, d in runner.get_output_details().items():
                sig.outputs[alias].CopyFrom(_tensor_info(d["name"], d["dtype"], d["shape_signature"]))
        return sigdefs, set(runners)
    log.warning("No signature def found in TFLite model. Generating one.")
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for d in inputs:
        sig.inputs[_legacy_name(d["name"])].CopyFrom(_tensor_info(d["name"], d["dtype"], d["shape"]))
    for d in outputs:
        sig.outputs[_legacy_name(d["name"])].CopyFrom(_tensor_info(d["name"], d["dtype"], d["shape"]))
    return {DEFAULT_SIGNATURE: sig}, set()


# TFLite TensorType -> numpy dtype (tensorflow/lite/schema/schema.fbs)
_NP_OF_TFLITE = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 5: object, 6: np.bool_,
                 7: np.int16, 8: np.complex64, 9: np.int8, 10: np.float64}


def _constant(model, tensor) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    raw = data.tobytes() if data is not None else b""
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    if tensor.type == 5:  # STRING: int32 count, count + 1 int32 offsets, then the bytes
        if not raw:
            return np.zeros(shape, dtype=object)
        count = int(np.frombuffer(raw[:4], np.int32)[0])
        offsets = np.frombuffer(raw[4:8 + 4 * count], np.int32)
        strings = [raw[offsets[i]:offsets[i + 1]] for i in range(count)]
        return np.array(strings, dtype=object).reshape(shape)
    return np.frombuffer(raw, _NP_OF_TFLITE[tensor.type]).reshape(shape).copy()


def _split_parse_example(model, model_bytes: bytes):
    """(_Prestage or None, the bytes the interpreter runs, or None when no operator is left)."""
    graph = model.subgraphs[0]
    codes = [oc.customCode for oc in model.operatorCodes]
    parse_ops = [op for op in graph.operators or [] if codes[op.opcodeIndex] in _PARSE_EXAMPLE_OPS]
    if not parse_ops:
        return None, model_bytes
    import tensorflow as tf
    from flatbuffers import flexbuffers
    parsers, model_inputs = [], list(graph.inputs)
    for op in parse_ops:
        if codes[op.opcodeIndex] != b"ParseExampleV2":
            raise errors.unimplemented("TFLite custom op ParseExample (v1) is not supported; convert with "
                                       "ParseExampleV2")
        ins = [int(i) for i in op.inputs]
        if ins[0] not in model_inputs:
            raise errors.unimplemented("A TFLite ParseExample op that does not read a model input is not supported")
        options = flexbuffers.Loads(op.customOptions.tobytes()) if op.customOptions is not None else {}
        num_sparse = int(dict(options).get("num_sparse", 0))
        sparse_keys, dense_keys, ragged_keys = (_constant(model, graph.tensors[i]) for i in ins[2:5])
        if ragged_keys.size:
            raise errors.unimplemented("TFLite ParseExample with ragged features is not supported")
        defaults = [_constant(model, graph.tensors[i]) for i in ins[5:]]
        outs = [int(i) for i in op.outputs]
        dense_outs = outs[3 * num_sparse:3 * num_sparse + len(defaults)]
        dense_shapes = []
        for i in dense_outs:
            t = graph.tensors[i]
            dims = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
            dense_shapes.append([int(d) for d in dims[1:]])
        sparse_types = [tf.as_dtype(_NP_OF_TFLITE[graph.tensors[i].type] if graph.tensors[i].type != 5 else tf.string)
                        for i in outs[num_sparse:2 * num_sparse]]
        parse = _parser(sparse_keys, dense_keys, defaults, num_sparse, sparse_types, dense_shapes)
        parsers.append((_name(graph.tensors[ins[0]].name), parse, [_name(graph.tensors[i].name) for i in outs]))
    remaining = [op for op in graph.operators if op not in parse_ops]
    prestage = _Prestage(parsers)
    if not remaining:
        return prestage, None
    from tensorflow.lite.tools import flatbuffer_utils
    consumed = {int(i) for op in remaining for i in op.inputs}
    parsed = [i for op in parse_ops for i in op.outputs if int(i) in consumed]
    still_read = [i for i in model_inputs if i in consumed]
    graph.operators = remaining
    graph.inputs = np.array(still_read + parsed, dtype=np.int32)
    model.signatureDefs = []
    return prestage, bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _parser(sparse_keys, dense_keys, defaults, num_sparse, sparse_types, dense_shapes):
    """TensorFlow's ParseExampleV2 with the model's keys, defaults and shapes, for a batch of strings."""
    import tensorflow as tf
    sparse_keys = tf.constant(sparse_keys.reshape(-1).tolist() or [], tf.string)
    dense_keys = tf.constant(dense_keys.reshape(-1).tolist() or [], tf.string)
    defaults = [tf.constant(d.tolist() if d.dtype == object else d, tf.string if d.dtype == object else None)
                for d in defaults]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def parse(serialized):
        result = tf.raw_ops.ParseExampleV2(
            serialized=serialized, names=tf.constant([], tf.string), sparse_keys=sparse_keys,
            dense_keys=dense_keys, ragged_keys=tf.constant([], tf.string), dense_defaults=defaults,
            num_sparse=num_sparse, sparse_types=sparse_types, ragged_value_types=[], ragged_split_types=[],
            dense_shapes=dense_shapes)
        sparse_indices, sparse_values, sparse_shapes, dense_values = result[:4]
        return list(sparse_indices) + list(sparse_values) + list(sparse_shapes) + list(dense_values)

    return parse


def load_tflite(name: str, version: int, path: str, num_pools: int = 1,
                interpreters_per_pool: int = 1) -> TfLiteServable:
    """Load `<path>/model.tflite` (--prefer_tflite_model). Raises ServingError when it cannot be served."""
    file = os.path.join(path, TFLITE_MODEL_FILE)
    try:
        with open(file, "rb") as f:
            model_bytes = f.read()
    except OSError as exc:
        raise errors.not_found(f"{file}: {exc.strerror}") from exc
    servable = TfLiteServable(name, version, path, model_bytes, num_pools, interpreters_per_pool)
    log.info("Loaded TensorFlow Lite model %s (%d interpreters, signatures: %s)", file,
             servable._pool.qsize(), ", ".join(servable.signatures))
    return servable
