"""Request logging: each model's `logging_config` (TF Serving's config/logging_config.proto) honoured.

A sampled predict/classify/regress/multi_inference request is written with its response as a `PredictionLog`
(apis/prediction_log.proto: request, response, `log_metadata` with the model spec, the sampling config and
the saved-model tags) into TFRecord files whose names start with the collector's `filename_prefix`.
TF Serving's open-source build registers no log collector; here the collector type "tfrecord" is one,
and any other type is refused as TF Serving refuses an unregistered one (log_collector.cc):
NOT_FOUND "Cannot find LogCollector::Factory for type: ...".

The request thread only samples and queues what it already holds (arrays, examples, outputs); the
protos are built, serialized and written by one background thread per process. The queue is bounded:
when it is full the record is dropped and counted, never waited for. Files rotate by size and only the
newest `max_files` of each prefix are kept; every process writes files of its own (its pid is in the
name). `close()` (at worker stop, and on SIGTERM through it) writes everything still queued.

A failed request is logged too: its request as far as it was read, no response, and its status as the
record's field 1000 (a string "CODE: message"), which TF Serving's readers skip as an unknown field;
`record_status(record_bytes)` reads it back ("OK" for a record without one).
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .config import LogSettings

log = logging.getLogger("server.request_log")

STATUS_FIELD = 1000          # the failed request's status in the record: outside TF Serving's message
QUEUE_SIZE = 4096            # records waiting for the writer; more are dropped and counted
FILE_BYTES = 64 << 20        # a file past this size is closed and the next one started
MAX_FILES = 16               # files kept per prefix and process; the oldest are deleted
WRITE_INTERVAL_S = 0.05      # the writer's pause between batches (records are on disk this long after)


@dataclass
class _Item:
    kind: str                 # "predict", "classify", "regress", "multi_inference"
    settings: LogSettings
    name: str
    version: int | None
    signature_name: str
    inputs: Any               # predict: {key: array}; classify/regress: (serialized examples, context or None);
                              # None when not read
    outputs: Any              # {key: array}; multi_inference: [outputs per task]; None for a failed request
    output_filter: tuple = ()
    tasks: tuple = ()         # multi_inference: ((method_name, signature_name), ...) as the request listed them
    status: str = ""          # "CODE: message" for a failed request
    time_s: float = 0.0


class _Files:
    """One prefix's TFRecord files in this process: rotation by size, the oldest beyond max_files deleted."""

    def __init__(self, prefix: str, file_bytes: int, max_files: int):
        self.prefix, self.file_bytes, self.max_files = prefix, file_bytes, max_files
        self.paths: list[str] = []
        self.writer: Any = None   # tf.io.TFRecordWriter once the first record comes
        self.size = 0
        self.seq = 0

    def write(self, data: bytes) -> None:
        import tensorflow as tf
        if self.writer is None or self.size >= self.file_bytes:
            self.close()
            path = f"{self.prefix}-{os.getpid()}-{self.seq:05d}.tfrecord"
            self.seq += 1
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self.writer = tf.io.TFRecordWriter(path)
            self.paths.append(path)
            self.size = 0
            while len(self.paths) > self.max_files:
                old = self.paths.pop(0)
                try:
                    os.unlink(old)
                except OSError:
                    pass
        self.writer.write(data)
        self.size += len(data) + 16      # length, its crc, the data, its crc

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class RequestLog:
    """The loggers of one process. `update(models)` takes a config's ModelSettings (start-up and every
    re-read); `sample(name)` is what a request asks: the model's LogSettings when this request is to be
    logged, else None; then `submit(...)` queues it."""

    def __init__(self, models=(), saved_model_tags=("serve",), metrics=None, queue_size: int = QUEUE_SIZE,
                 file_bytes: int = FILE_BYTES, max_files: int = MAX_FILES, interval_s: float = WRITE_INTERVAL_S):
        self._tags = tuple(saved_model_tags)
        self._interval_s = interval_s
        self._metrics = metrics
        self._file_bytes, self._max_files = file_bytes, max_files
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._by_model: dict[str, LogSettings] = {}
        self._files: dict[str, _Files] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.update(models)

    # -- config ------------------------------------------------------------------------------
    def update(self, models) -> None:
        by_model = {m.name: m.logging for m in models if getattr(m, "logging", None) is not None}
        self._by_model = by_model
        if by_model:
            self._start()

    @property
    def active(self) -> bool:
        return bool(self._by_model)

    # -- the request side: never blocks, never raises ----------------------------------------
    def sample(self, name: str) -> LogSettings | None:
        settings = self._by_model.get(name)
        if settings is None or self._closed:
            return None
        rate = settings.sampling_rate
        if rate >= 1.0 or (rate > 0.0 and random.random() < rate):
            return settings
        return None

    def submit(self, kind: str, settings: LogSettings, name: str, version: int | None, signature_name: str,
               inputs, outputs, output_filter=(), status: str = "", tasks=()) -> None:
        item = _Item(kind, settings, name, version, signature_name, inputs, outputs, tuple(output_filter),
                     tuple(tasks), status, time.time())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self._metrics is not None:
                try:
                    self._metrics.record_log_dropped(name)
                except Exception:  # noqa: BLE001 - the request log never fails a request
                    pass

    # -- the writer --------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        # In batches: whatever is queued is written and the files flushed once, then the writer sleeps a
        # moment while records gather, so that requests neither wake it nor wait for a flush one by one.
        stop = False
        while not stop:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for item in items:
                if item is None:
                    stop = True
                else:
                    self._write(item)
            for files in self._files.values():
                self._safely(files.flush)
            for _ in items:
                self._queue.task_done()
            if not stop:
                time.sleep(self._interval_s)
        for files in self._files.values():
            self._safely(files.close)

    def _write(self, item: _Item) -> None:
        status = "OK"
        try:
            record = build_record(item, self._tags)
            files = self._files.get(item.settings.filename_prefix)
            if files is None:
                files = self._files[item.settings.filename_prefix] = _Files(
                    item.settings.filename_prefix, self._file_bytes, self._max_files)
            files.write(record)
            self.written += 1
        except Exception as exc:  # noqa: BLE001 - logged here, never seen by a client
            status = "INTERNAL"
            self.failed += 1
            log.error("Request log for model %s: %s: %s", item.name, type(exc).__name__, exc)
        if self._metrics is not None:
            self._safely(self._metrics.record_log, item.name, status)

    @staticmethod
    def _safely(fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            log.error("Request log: %s: %s", type(exc).__name__, exc)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests and the docs use it)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued, close the files, stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        log.info("Request log closed: %d record(s) written, %d dropped, %d failed",
                 self.written, self.dropped, self.failed)

    def paths(self) -> list[str]:
        return [p for files in self._files.values() for p in files.paths]


# ---------------------------------------------------------------------------------------------
# The records
# ---------------------------------------------------------------------------------------------

def build_record(item: _Item, saved_model_tags=("serve",)) -> bytes:
    """The serialized PredictionLog of one logged request (with its status field when it failed)."""
    from tensorflow_serving.apis import prediction_log_pb2

    entry = prediction_log_pb2.PredictionLog()
    meta = entry.log_metadata
    _model_spec(meta.model_spec, item)
    meta.sampling_config.CopyFrom(_sampling_config(item.settings.config))
    meta.saved_model_tags.extend(saved_model_tags)
    meta.timestamp_secs = int(item.time_s)
    if item.kind == "predict":
        _predict(entry.predict_log, item)
    elif item.kind == "classify":
        _classify(entry.classify_log, item)
    elif item.kind == "multi_inference":
        _multi_inference(entry.multi_inference_log, item)
    else:
        _regress(entry.regress_log, item)
    data = entry.SerializeToString()
    if item.status:
        data += _status_field(item.status)
    return data


@functools.lru_cache(maxsize=64)
def _sampling_config(config: bytes):
    from tensorflow_serving.config import logging_config_pb2
    return logging_config_pb2.LoggingConfig.FromString(config).sampling_config


def _model_spec(out, item: _Item, signature_name: str | None = None) -> None:
    out.name = item.name
    if item.version is not None:
        out.version.value = item.version
    out.signature_name = item.signature_name if signature_name is None else signature_name


def _predict(out, item: _Item) -> None:
    from .grpc import tensor_proto
    request = out.request
    _model_spec(request.model_spec, item)
    request.output_filter.extend(item.output_filter)
    for key, array in sorted((item.inputs or {}).items()):
        tensor_proto.write(array, request.inputs[key])
    if item.outputs is not None:
        _model_spec(out.response.model_spec, item)
        for key, array in sorted(item.outputs.items()):
            tensor_proto.write(array, out.response.outputs[key])


def _examples(request, item: _Item) -> None:
    """The request's Input as the client sent it: an ExampleList, or an ExampleListWithContext."""
    _model_spec(request.model_spec, item)
    _input(request.input, item)


def _input(out, item: _Item) -> None:
    from tensorflow.core.example import example_pb2
    serialized, context = item.inputs if isinstance(item.inputs, tuple) else ((), None)
    if context is not None:
        listed = out.example_list_with_context
        listed.context.ParseFromString(context)
        examples = listed.examples
    else:
        examples = out.example_list.examples
    for one in serialized:
        examples.append(example_pb2.Example.FromString(bytes(one)))


def _classify(out, item: _Item) -> None:
    from .grpc.prediction_service import fill_classifications
    _examples(out.request, item)
    if item.outputs is not None:
        _model_spec(out.response.model_spec, item)
        fill_classifications(out.response.result, item.outputs)


def _regress(out, item: _Item) -> None:
    from .grpc.prediction_service import fill_regressions
    _examples(out.request, item)
    if item.outputs is not None:
        _model_spec(out.response.model_spec, item)
        fill_regressions(out.response.result, item.outputs)


def _multi_inference(out, item: _Item) -> None:
    """One record for the whole request, as TF Serving's MultiInferenceLog: its tasks, its one Input, and
    one result per task (classification or regression) when it succeeded."""
    from .grpc.prediction_service import fill_classifications, fill_regressions
    from .tf_example import CLASSIFY_METHOD
    request = out.request
    for method, signature_name in item.tasks:
        task = request.tasks.add()
        _model_spec(task.model_spec, item, signature_name)
        task.method_name = method
    _input(request.input, item)
    if item.outputs is None:
        return
    for (method, signature_name), outputs in zip(item.tasks, item.outputs):
        result = out.response.results.add()
        _model_spec(result.model_spec, item, signature_name)
        if method == CLASSIFY_METHOD:
            fill_classifications(result.classification_result, outputs)
        else:
            fill_regressions(result.regression_result, outputs)


def _status_field(status: str) -> bytes:
    payload = status.encode("utf-8", "replace")
    return _varint(STATUS_FIELD << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def record_status(record: bytes) -> str:
    """The status a record was logged with: "OK", or "CODE: message" for a failed request."""
    from google.protobuf import unknown_fields
    from tensorflow_serving.apis import prediction_log_pb2
    entry = prediction_log_pb2.PredictionLog.FromString(record)
    for field in unknown_fields.UnknownFieldSet(entry):
        if field.field_number == STATUS_FIELD:
            return field.data.decode("utf-8", "replace")
    return "OK"
