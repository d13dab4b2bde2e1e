"""Dynamic batching in the manner of TF Serving's `--enable_batching`.

Two parts:

* `BatchingParameters`: the `--batching_parameters_file`, a `tensorflow.serving.BatchingParameters`
  message in protobuf text format. The message is defined in TF Serving's
  `session_bundle_config.proto`, which the tensorflow-serving-api wheel does not ship, so the
  message class is built here from a descriptor with the same package, names, numbers and types;
  protobuf's own `text_format` parses the file, so unknown fields and bad syntax fail with
  protobuf's messages. Defaults and checks follow TF Serving (SharedBatchScheduler::QueueOptions,
  bundle_factory_util.h, batching_session.cc).

* `Batcher`: concurrent `submit()` calls (one per HTTP worker thread) are queued, merged along
  axis 0 into batches of at most `max_batch_size` rows and run by `num_batch_threads` threads; each
  caller blocks until its own rows of the outputs are back. The scheduling mirrors
  SharedBatchScheduler: a queue holds closed batches plus one open batch; the open batch becomes
  runnable when it is full or its oldest task has waited `batch_timeout_micros`; a task that does
  not fit the open batch closes it; when `max_enqueued_batches` batches wait, new tasks are
  refused with TF Serving's "queue is full" error instead of growing a backlog.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from server.errors import ServingError, internal, invalid_argument, unavailable

# ---------------------------------------------------------------------------------------------
# BatchingParameters
# ---------------------------------------------------------------------------------------------

_PROTO_FILE = "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
_MESSAGE_NAME = "tensorflow.serving.BatchingParameters"

_F = descriptor_pb2.FieldDescriptorProto
# (name, number, label, type, wrapper type) as in TF Serving's BatchingParameters.
_FIELDS = (
    ("max_batch_size", 1, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _F.LABEL_REPEATED, _F.TYPE_INT64, None),
    ("pad_variable_length_inputs", 7, _F.LABEL_OPTIONAL, _F.TYPE_BOOL, None),
    ("enable_large_batch_splitting", 8, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.BoolValue"),
    ("max_execution_batch_size", 9, _F.LABEL_OPTIONAL, _F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
)


def _build_message_class():
    # A private pool: never clashes with a real session_bundle_config_pb2 imported elsewhere.
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fdp = descriptor_pb2.FileDescriptorProto(
        name=_PROTO_FILE, package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    msg = fdp.message_type.add(name="BatchingParameters")
    for name, number, label, ftype, type_name in _FIELDS:
        field = msg.field.add(name=name, number=number, label=label, type=ftype)
        if type_name:
            field.type_name = type_name
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(_MESSAGE_NAME))


BatchingParametersProto = _build_message_class()

# TF Serving's defaults for fields the file leaves out (SharedBatchScheduler::QueueOptions,
# SharedBatchScheduler::Options; num_batch_threads defaults to port::MaxParallelism()).
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_THREAD_POOL_NAME = "batch_threads"


class BatchingConfigError(ValueError):
    """A batching parameters file that cannot be used; the message says why (for the CLI)."""


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = 0          # 0: one per CPU, as TF Serving
    thread_pool_name: str = DEFAULT_THREAD_POOL_NAME
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0   # 0: max_batch_size

    def __post_init__(self):
        if self.num_batch_threads == 0:
            object.__setattr__(self, "num_batch_threads", os.cpu_count() or 1)
        if self.max_execution_batch_size == 0 or not self.enable_large_batch_splitting:
            # Without splitting TF Serving batches up to the input limit.
            object.__setattr__(self, "max_execution_batch_size", self.max_batch_size)
        object.__setattr__(self, "allowed_batch_sizes", tuple(int(s) for s in self.allowed_batch_sizes))
        self._validate()

    def _validate(self) -> None:
        def fail(msg):
            raise BatchingConfigError(msg)

        if self.num_batch_threads < 1:
            fail(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.max_batch_size < 1:
            fail(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            fail(f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}")
        if self.max_enqueued_batches < 0 or (self.max_enqueued_batches == 0 and self.enable_large_batch_splitting):
            fail(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
        if self.max_execution_batch_size < 1:
            fail(f"max_execution_batch_size must be positive; was {self.max_execution_batch_size}")
        if self.enable_large_batch_splitting and self.max_batch_size < self.max_execution_batch_size:
            fail("When enable_large_batch_splitting is true, input_batch_size_limit must be greater than "
                 f"or equal to max_execution_batch_size (max_batch_size={self.max_batch_size}, "
                 f"max_execution_batch_size={self.max_execution_batch_size})")
        sizes = self.allowed_batch_sizes
        if sizes:
            if sizes[-1] != self.max_batch_size:
                fail("Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                     f"{sizes[-1]}; expected {self.max_batch_size}")
            if sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:])):
                fail(f"allowed_batch_sizes entries must be positive and monotonically increasing; got {list(sizes)}")
        if self.pad_variable_length_inputs:
            fail("pad_variable_length_inputs is not supported by this server; requests whose inputs differ "
                 "beyond the batch dimension are batched separately instead")

    @property
    def effective_max_enqueued_batches(self) -> int:
        # SharedBatchScheduler::AddQueue rewrites 0 to 1 when splitting is off.
        return self.max_enqueued_batches or 1

    @classmethod
    def from_proto(cls, msg) -> "BatchingParameters":
        kwargs = {}
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                     "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"):
            if msg.HasField(name):
                kwargs[name] = getattr(msg, name).value
        kwargs["allowed_batch_sizes"] = tuple(msg.allowed_batch_sizes)
        kwargs["pad_variable_length_inputs"] = msg.pad_variable_length_inputs
        if kwargs.get("num_batch_threads") == 0:
            raise BatchingConfigError("num_batch_threads must be positive; was 0")
        if kwargs.get("max_batch_size") == 0:
            raise BatchingConfigError("max_batch_size must be positive; was 0")
        if "max_execution_batch_size" in kwargs and kwargs["max_execution_batch_size"] == 0:
            raise BatchingConfigError("max_execution_batch_size must be positive; was 0")
        return cls(**kwargs)

    @classmethod
    def from_text(cls, text: str, source: str = "<batching parameters>") -> "BatchingParameters":
        msg = BatchingParametersProto()
        try:
            text_format.Parse(text, msg)
        except text_format.ParseError as e:
            raise BatchingConfigError(f"Invalid protobuf file: '{source}': {e}") from None
        return cls.from_proto(msg)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BatchingParameters":
        from server.config import read_text_file
        return cls.from_text(read_text_file(path, "batching parameters", BatchingConfigError), str(path))

    def to_proto(self):
        msg = BatchingParametersProto()
        msg.max_batch_size.value = self.max_batch_size
        msg.batch_timeout_micros.value = self.batch_timeout_micros
        msg.max_enqueued_batches.value = self.max_enqueued_batches
        msg.num_batch_threads.value = self.num_batch_threads
        msg.thread_pool_name.value = self.thread_pool_name
        msg.allowed_batch_sizes.extend(self.allowed_batch_sizes)
        msg.pad_variable_length_inputs = self.pad_variable_length_inputs
        if self.enable_large_batch_splitting:
            msg.enable_large_batch_splitting.value = True
            msg.max_execution_batch_size.value = self.max_execution_batch_size
        return msg


# ---------------------------------------------------------------------------------------------
# Batcher
# ---------------------------------------------------------------------------------------------

Tensors = dict[str, np.ndarray]


class _Job:
    """What one submit() waits for: one or (with splitting) several tasks."""
    __slots__ = ("lock", "pending", "parts", "error")

    def __init__(self, nparts: int):
        self.lock = threading.Lock()
        self.lock.acquire()           # released once every part is done
        self.pending = nparts
        self.parts: list = [None] * nparts
        self.error: ServingError | None = None


class _Task:
    __slots__ = ("job", "index", "inputs", "size")

    def __init__(self, job: _Job, index: int, inputs: Tensors, size: int):
        self.job, self.index, self.inputs, self.size = job, index, inputs, size


class _Batch:
    __slots__ = ("tasks", "size", "start")

    def __init__(self):
        self.tasks: list[_Task] = []
        self.size = 0
        self.start = 0.0


class _Queue:
    """The batches of one kind of request (same input names, dtypes and non-batch shapes)."""
    __slots__ = ("batches",)

    def __init__(self):
        self.batches: deque[_Batch] = deque([_Batch()])   # the last one is open


def _batch_size(inputs: Tensors) -> int:
    if not inputs:
        raise invalid_argument("Batching Run() requires at least one input tensor")
    size = None
    for name, arr in inputs.items():
        if not isinstance(arr, np.ndarray):
            raise invalid_argument(f"Batching input '{name}' is not an array")
        if arr.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        if size is None:
            size = arr.shape[0]
        elif arr.shape[0] != size:
            raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return size


class Batcher:
    """Merge concurrent `submit()` calls into batched `run()` calls.

    `run(inputs) -> outputs` takes and returns dicts of arrays whose dimension 0 is the batch;
    every output must have that leading dimension (only signatures whose inputs and outputs are
    all batched should go through a Batcher).
    """

    def __init__(self, run: Callable[[Tensors], Tensors], params: BatchingParameters | None = None):
        self._run = run
        self.params = params = params or BatchingParameters()
        self._max_input = params.max_batch_size
        self._max_exec = params.max_execution_batch_size
        self._timeout = params.batch_timeout_micros / 1e6
        self._max_batches = params.effective_max_enqueued_batches
        self._split = params.enable_large_batch_splitting
        self._allowed = params.allowed_batch_sizes
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[tuple, _Queue] = {}
        self._closed = False
        # Counters, read by tests and metrics (updated by the batch threads).
        self.num_batches = 0
        self.num_rows = 0
        self.num_padding_rows = 0
        self._threads = [
            threading.Thread(target=self._thread_main, name=f"{params.thread_pool_name}_{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for t in self._threads:
            t.start()

    # -- caller side ------------------------------------------------------------------------

    def submit(self, inputs: Tensors) -> Tensors:
        """Run `inputs` as part of a batch; block until this request's rows of the outputs are ready."""
        size = _batch_size(inputs)
        if size == 0:
            return self._run_direct(inputs)
        key = tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(inputs.items()))
        with self._cond:
            if self._closed:
                raise unavailable("The batch scheduler is shutting down")
            if size > self._max_input:
                raise invalid_argument(
                    f"Task size {size} is larger than maximum input batch size {self._max_input}")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue()
            job = self._enqueue_locked(queue, inputs, size)
            self._cond.notify()
        job.lock.acquire()
        if job.error is not None:
            raise job.error
        if len(job.parts) == 1:
            return job.parts[0]
        return {k: np.concatenate([p[k] for p in job.parts]) for k in job.parts[0]}

    def _enqueue_locked(self, queue: _Queue, inputs: Tensors, size: int) -> _Job:
        batches = queue.batches
        open_batch = batches[-1]
        max_exec = self._max_exec
        if self._split:
            # Eager split: the first part fills the open batch, the rest are full-size chunks.
            capacity = (self._max_batches - len(batches)) * max_exec + (max_exec - open_batch.size)
            if size > capacity:
                raise unavailable(
                    "The batch scheduling queue to which this task was submitted is full; task size is "
                    f"{size} but scheduling capacity is only {capacity} (num_enqueued_batches={len(batches)}, "
                    f"max_enqueued_batches={self._max_batches}, open_batch_size={open_batch.size}, "
                    f"max_execution_batch_size={max_exec})")
            room = max_exec - open_batch.size
            cuts = [0]
            if size > room:
                if room > 0:
                    cuts.append(room)
                while size - cuts[-1] > max_exec:
                    cuts.append(cuts[-1] + max_exec)
            cuts.append(size)
        else:
            if open_batch.size + size > self._max_input and len(batches) >= self._max_batches:
                raise unavailable(
                    "The batch scheduling queue to which this task was submitted is full; currently "
                    f"{len(batches)} batches enqueued and max_enqueued_batches is {self._max_batches}")
            cuts = [0, size]
        job = _Job(len(cuts) - 1)
        now = time.monotonic()
        for i in range(len(cuts) - 1):
            lo, hi = cuts[i], cuts[i + 1]
            part = inputs if (lo == 0 and hi == size) else {k: v[lo:hi] for k, v in inputs.items()}
            if batches[-1].size + (hi - lo) > max_exec and batches[-1].size > 0:
                batches.append(_Batch())
            b = batches[-1]
            if b.size == 0:
                b.start = now
            b.tasks.append(_Task(job, i, part, hi - lo))
            b.size += hi - lo
        return job

    def _run_direct(self, inputs: Tensors) -> Tensors:
        try:
            return self._run(inputs)
        except ServingError:
            raise
        except Exception as e:  # noqa: BLE001 - any model failure becomes a JSON error
            raise internal(_describe(e)) from e

    # -- batch threads ----------------------------------------------------------------------

    def _next_batch_locked(self) -> tuple[_Batch | None, float | None]:
        """A runnable batch, or None and how long to wait before one may become runnable."""
        now = time.monotonic()
        wait = None
        for key, queue in list(self._queues.items()):
            batches = queue.batches
            if len(batches) > 1:
                return batches.popleft(), None
            b = batches[0]
            if b.size == 0:
                del self._queues[key]       # idle: forget it (a new one is made on demand)
                continue
            due = b.start + self._timeout
            if b.size >= self._max_exec or now >= due:
                batches[0] = _Batch()
                return b, None
            if wait is None or due - now < wait:
                wait = due - now
        return None, wait

    def _thread_main(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    if self._closed:
                        return
                    batch, wait = self._next_batch_locked()
                    if batch is not None:
                        break
                    cond.wait(wait)
                if any(len(q.batches) > 1 or q.batches[0].size for q in self._queues.values()):
                    cond.notify()    # more work waiting: wake another thread
            self._process(batch)

    def _process(self, batch: _Batch) -> None:
        tasks = batch.tasks
        size = batch.size
        target = size
        if self._allowed:
            for allowed in self._allowed:
                if allowed >= size:
                    target = allowed
                    break
        pad = target - size
        try:
            if len(tasks) == 1 and pad == 0:
                inputs = tasks[0].inputs
            else:
                inputs = {}
                for name in tasks[0].inputs:
                    arrays = [t.inputs[name] for t in tasks]
                    if pad:
                        # As TF Serving: pad with copies of the first row of the first task.
                        arrays.append(np.repeat(arrays[0][:1], pad, axis=0))
                    inputs[name] = np.concatenate(arrays)
            outputs = self._run(inputs)
            for name, out in outputs.items():
                if not isinstance(out, np.ndarray) or out.ndim == 0:
                    raise internal(f"Batched output tensor '{name}' has 0 dimensions")
                if out.shape[0] != target:
                    raise internal(
                        f"Batched output tensor '{name}''s 0th dimension ({out.shape[0]}) does not equal the "
                        f"sum of the 0th dimension sizes of the input tensors ({target})")
        except Exception as e:  # noqa: BLE001 - reaches every request of the batch
            err = e if isinstance(e, ServingError) else internal(_describe(e))
            for t in tasks:
                # One exception object per waiting thread: each raises (and fills a traceback) alone.
                self._finish(t, None, ServingError(err.code, err.message))
            return
        self.num_batches += 1
        self.num_rows += size
        self.num_padding_rows += pad
        if len(tasks) == 1 and pad == 0:
            self._finish(tasks[0], outputs, None)
            return
        offset = 0
        for t in tasks:
            end = offset + t.size
            self._finish(t, {k: v[offset:end] for k, v in outputs.items()}, None)
            offset = end

    def _finish(self, task: _Task, outputs: Tensors | None, error: ServingError | None) -> None:
        job = task.job
        if len(job.parts) == 1:
            job.parts[0] = outputs
            job.error = error
            job.lock.release()
            return
        with self._cond:
            job.parts[task.index] = outputs
            if error is not None and job.error is None:
                job.error = error
            job.pending -= 1
            done = job.pending == 0
        if done:
            job.lock.release()

    # -- shutdown -----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop the batch threads; requests still queued fail with UNAVAILABLE."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            pending = [t for q in self._queues.values() for b in q.batches for t in b.tasks]
            self._queues.clear()
            self._cond.notify_all()
        err = unavailable("The batch scheduler was shut down before this request ran")
        for t in pending:
            self._finish(t, None, err)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "Batcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return text if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# Wiring for the server: parameters from the flag, one Batcher per served signature
# ---------------------------------------------------------------------------------------------

def read_parameters(path: str | os.PathLike | None) -> BatchingParameters:
    """`--batching_parameters_file` (or TF Serving's defaults without one); bad files raise ConfigError."""
    from server.config import ConfigError
    try:
        if path is None:
            return BatchingParameters()
        return BatchingParameters.from_file(path)
    except BatchingConfigError as e:
        raise ConfigError(str(e)) from None


def batchable(signature) -> bool:
    """Whether every input and output of the signature has a leading dimension of any size."""
    specs = list(signature.inputs.values()) + list(signature.outputs.values())
    return bool(signature.inputs) and all(s.shape is not None and len(s.shape) >= 1 and s.shape[0] == -1
                                          for s in specs)


class BatcherPool:
    """One Batcher per (model, version, signature), made on first use.

    `batcher_for(servable, signature)` returns `Batcher.submit` for signatures whose inputs and
    outputs are all batched along dimension 0, else None (they run directly, like TF Serving runs
    non-batchable signatures). A servable loaded again under the same name and version (a reload)
    gets fresh batchers; the old ones are closed.
    """

    def __init__(self, params: BatchingParameters | None = None):
        self.params = params or BatchingParameters()
        self._lock = threading.Lock()
        self._batchers: dict[tuple, tuple[object, Batcher | None]] = {}
        self._closed = False

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
                if entry is not None and entry[1] is not None:
                    entry[1].close()
                batcher = None
                if batchable(signature):
                    def run(inputs, _servable=servable, _signature=signature):
                        return _servable.run(_signature, inputs)
                    batcher = Batcher(run, self.params)
                entry = self._batchers[key] = (servable, batcher)
        return entry[1].submit if entry[1] is not None else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            entries = list(self._batchers.values())
            self._batchers.clear()
        for _, batcher in entries:
            if batcher is not None:
                batcher.close()
