"""The dynamic batcher, in the manner of TF Serving's `--enable_batching`.

Concurrent `Batcher.submit()` calls (one per request thread) are queued, merged along axis 0 into
batches of at most `max_batch_size` rows and run by `num_batch_threads` threads; each caller blocks
until its own rows of the outputs are back. The scheduling mirrors SharedBatchScheduler: a queue
holds closed batches plus one open batch; the open batch becomes runnable when it is full or its
oldest task has waited `batch_timeout_micros`; a task that does not fit the open batch closes it;
when `max_enqueued_batches` batches wait, new tasks are refused with TF Serving's "queue is full"
error instead of growing a backlog.

A caller may give `submit()` a time limit (`timeout_s`: REST's --rest_api_timeout_in_ms, a gRPC call's
deadline). A caller still waiting when it runs out answers DEADLINE_EXCEEDED; if its task was still
queued, the task is cancelled and never runs (the batch thread drops it when it takes the batch, and
runs the other tasks of that batch as usual). A task whose limit has passed by the time its batch is
taken is dropped the same way, as TF Serving's BatchingSession drops a batch whose tasks all timed out
in the queue.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from ..errors import ServingError, internal, invalid_argument, unavailable
from .parameters import BatchingParameters

Tensors = dict[str, np.ndarray]


class _Job:
    """What one submit() waits for: one or (with splitting) several tasks.

    `deadline` (time.monotonic(), None: no limit): past it the tasks are not run. `started` and
    `cancelled` are set under the batcher's lock: `started` once a batch thread took one of its tasks
    to run, `cancelled` once its caller gave up (or a batch thread found it past its deadline); the
    batch threads never run a task of a cancelled job.
    """
    __slots__ = ("lock", "pending", "parts", "error", "deadline", "started", "cancelled")

    def __init__(self, nparts: int, deadline: float | None = None):
        self.lock = threading.Lock()
        self.lock.acquire()           # released once every part is done
        self.pending = nparts
        self.parts: list = [None] * nparts
        self.error: ServingError | None = None
        self.deadline = deadline
        self.started = False
        self.cancelled = False


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
    size: int | None = None
    for name, arr in inputs.items():
        if not isinstance(arr, np.ndarray):
            raise invalid_argument(f"Batching input '{name}' is not an array")
        if arr.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        if size is None:
            size = arr.shape[0]
        elif arr.shape[0] != size:
            raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    assert size is not None   # at least one input (checked above)
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

    def submit(self, inputs: Tensors, timeout_s: float | None = None) -> Tensors:
        """Run `inputs` as part of a batch; block until this request's rows of the outputs are ready.

        `timeout_s`: how long the caller may wait (None: no limit). Past it, DEADLINE_EXCEEDED; a task
        still queued then is cancelled and never runs.
        """
        size = _batch_size(inputs)
        if size == 0:
            return self._run_direct(inputs)
        deadline = None
        if timeout_s is not None:
            if timeout_s <= 0:
                raise _queue_timeout(timeout_s)
            deadline = time.monotonic() + timeout_s
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
            job = self._enqueue_locked(queue, inputs, size, deadline)
            self._cond.notify()
        if deadline is None:
            job.lock.acquire()
        elif not job.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            assert timeout_s is not None   # a deadline comes from it
            self._give_up(job, timeout_s)
        if job.error is not None:
            raise job.error
        if len(job.parts) == 1:
            return job.parts[0]
        return {k: np.concatenate([p[k] for p in job.parts]) for k in job.parts[0]}

    def _give_up(self, job: _Job, timeout_s: float) -> None:
        """The caller's time is up: cancel what has not started; raise DEADLINE_EXCEEDED unless the
        answer arrived meanwhile (then return, the job's lock held, as after a normal wait)."""
        with self._cond:
            job.cancelled = True
            started = job.started
        if job.lock.acquire(blocking=False):
            return
        if not started:
            raise _queue_timeout(timeout_s)
        raise ServingError("DEADLINE_EXCEEDED", "Run() timeout exceeded while the batch with this request was "
                                                f"running (the request's time limit was {_ms(timeout_s)} ms)")

    def _enqueue_locked(self, queue: _Queue, inputs: Tensors, size: int, deadline: float | None = None) -> _Job:
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
        job = _Job(len(cuts) - 1, deadline)
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
                    if batch is not None and self._start_locked(batch):
                        break
                    if batch is None:
                        cond.wait(wait)
                if any(len(q.batches) > 1 or q.batches[0].size for q in self._queues.values()):
                    cond.notify()    # more work waiting: wake another thread
            self._process(batch)

    def _start_locked(self, batch: _Batch) -> bool:
        """Drop the tasks of cancelled or timed-out jobs from a batch about to run; mark the others
        started. False when no task is left to run."""
        now = None
        live = []
        for t in batch.tasks:
            job = t.job
            if job.cancelled:
                continue
            if job.deadline is not None:
                if now is None:
                    now = time.monotonic()
                if now >= job.deadline:
                    job.cancelled = True     # its caller is about to give up: never run it
                    continue
            job.started = True
            live.append(t)
        if len(live) != len(batch.tasks):
            batch.tasks = live
            batch.size = sum(t.size for t in live)
        return bool(live)

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
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "Batcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.001 else f"{seconds * 1000:.3g}"


def _queue_timeout(timeout_s: float) -> ServingError:
    return ServingError("DEADLINE_EXCEEDED", "Run() timeout exceeded while waiting in batching queue (the "
                                             f"request's time limit was {_ms(timeout_s)} ms); it was not run")


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return text if text else type(e).__name__
