"""server/batching/scheduler.py: the dynamic batcher."""
import threading
import time

import numpy as np
import pytest

from server.batching.parameters import BatchingParameters
from server.batching.scheduler import Batcher
from server.errors import ServingError


class Model:
    """A run() fn that records the batch sizes it was called with; y = 2x + 1 per row."""

    def __init__(self, delay=0.0, fail=None):
        self.calls = []
        self.delay = delay
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, inputs):
        x = inputs["x"]
        with self.lock:
            self.calls.append(x.shape[0])
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise self.fail
        return {"y": x * 2 + 1, "s": x.reshape(x.shape[0], -1).sum(axis=1)}


def params(**kw):
    return BatchingParameters(**{"num_batch_threads": 1, **kw})


def hammer(batcher, nthreads, per_thread, rows=lambda i: 1, width=3):
    """Submit from many threads at once; every caller checks that it got its own rows back."""
    errors, barrier = [], threading.Barrier(nthreads)

    def worker(tid):
        barrier.wait()
        for j in range(per_thread):
            n = rows(tid * per_thread + j)
            x = np.full((n, width), tid * 1000 + j, dtype=np.float32) + np.arange(n, dtype=np.float32)[:, None]
            try:
                out = batcher.submit({"x": x})
                np.testing.assert_array_equal(out["y"], x * 2 + 1)
                np.testing.assert_array_equal(out["s"], x.sum(axis=1))
            except Exception as e:  # collected and re-raised in the main thread
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_each_caller_gets_its_own_rows_and_batches_merge():
    model = Model(delay=0.002)
    with Batcher(model, params(max_batch_size=32, num_batch_threads=2)) as b:
        errors = hammer(b, nthreads=24, per_thread=20, rows=lambda i: 1 + i % 3)
    assert not errors, errors[:3]
    total_rows = sum(1 + i % 3 for i in range(24 * 20))
    assert sum(model.calls) == total_rows
    assert max(model.calls) <= 32
    # Merging happened: far fewer model calls than requests.
    assert len(model.calls) < 24 * 20 / 3, len(model.calls)


def test_single_request_runs_unchanged():
    model = Model()
    with Batcher(model, params()) as b:
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        out = b.submit({"x": x})
    np.testing.assert_array_equal(out["y"], x * 2 + 1)
    assert model.calls == [2]


def test_padding_to_allowed_batch_sizes():
    model = Model()
    with Batcher(model, params(max_batch_size=16, allowed_batch_sizes=(4, 8, 16))) as b:
        x = np.arange(15, dtype=np.float32).reshape(5, 3)
        out = b.submit({"x": x})
        np.testing.assert_array_equal(out["y"], x * 2 + 1)
        assert out["y"].shape == (5, 3)
        b.submit({"x": np.ones((1, 3), np.float32)})
        b.submit({"x": np.ones((16, 3), np.float32)})
        assert b.num_padding_rows == 3 + 3
    assert model.calls == [8, 4, 16]


def test_timeout_waits_for_more_requests_then_runs_partial_batch():
    model = Model()
    with Batcher(model, params(max_batch_size=64, batch_timeout_micros=200_000)) as b:
        t0 = time.monotonic()
        errors = hammer(b, nthreads=5, per_thread=1)
        elapsed = time.monotonic() - t0
    assert not errors
    # All five arrived within the 200 ms window: one call; and nobody waited much past the timeout.
    assert model.calls == [5]
    assert 0.15 < elapsed < 2.0


def test_full_batch_runs_without_waiting_for_timeout():
    model = Model()
    with Batcher(model, params(max_batch_size=4, batch_timeout_micros=5_000_000)) as b:
        t0 = time.monotonic()
        errors = hammer(b, nthreads=4, per_thread=1)
        assert time.monotonic() - t0 < 2.0
    assert not errors and model.calls == [4]


def test_task_larger_than_max_batch_size_is_refused():
    with Batcher(Model(), params(max_batch_size=8)) as b:
        with pytest.raises(ServingError) as e:
            b.submit({"x": np.ones((9, 3), np.float32)})
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    assert e.value.message == "Task size 9 is larger than maximum input batch size 8"


def test_large_batch_splitting_runs_large_task_in_pieces():
    model = Model()
    p = params(max_batch_size=100, enable_large_batch_splitting=True, max_execution_batch_size=8,
               max_enqueued_batches=100)
    with Batcher(model, p) as b:
        x = np.arange(60, dtype=np.float32).reshape(20, 3)
        out = b.submit({"x": x})
    np.testing.assert_array_equal(out["y"], x * 2 + 1)
    assert model.calls == [8, 8, 4]


def gated_run():
    """A run function that blocks until `gate` is set; `started` says a batch thread is inside it."""
    gate, started = threading.Event(), threading.Event()

    def blocked_run(inputs):
        started.set()
        gate.wait(10)
        return {"y": inputs["x"]}

    return blocked_run, started, gate


def test_full_queue_is_refused_not_queued():
    blocked_run, started, gate = gated_run()
    b = Batcher(blocked_run, params(max_batch_size=2, max_enqueued_batches=1))
    results = []
    first = threading.Thread(target=lambda: results.append(b.submit({"x": np.ones((2, 1))})))
    first.start()
    assert started.wait(5)                      # the only batch thread is now busy
    second = threading.Thread(target=lambda: results.append(b.submit({"x": np.ones((2, 1))})))
    second.start()                              # fills the one allowed enqueued batch
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not b._queues:
        time.sleep(0.001)
    time.sleep(0.05)
    with pytest.raises(ServingError) as e:
        b.submit({"x": np.ones((1, 1))})
    gate.set()
    first.join(5)
    second.join(5)
    b.close()
    assert e.value.message.startswith("The batch scheduling queue to which this task was submitted is full")
    assert e.value.code == "UNAVAILABLE" and e.value.http_status == 503
    assert len(results) == 2


def test_error_in_run_reaches_every_request_of_the_batch():
    model = Model(delay=0.01, fail=RuntimeError("matmul: shapes are incompatible"))
    with Batcher(model, params(max_batch_size=16)) as b:
        errors = hammer(b, nthreads=6, per_thread=2)
    assert len(errors) == 12
    assert all(isinstance(e, ServingError) and e.code == "INTERNAL" for e in errors)
    assert all("shapes are incompatible" in e.message for e in errors)
    assert len(model.calls) < 12                  # the failing calls were batched too


def test_serving_error_from_run_keeps_its_code():
    model = Model(fail=ServingError("INVALID_ARGUMENT", "bad value"))
    with Batcher(model, params()) as b:
        with pytest.raises(ServingError) as e:
            b.submit({"x": np.ones((1, 3), np.float32)})
    assert (e.value.code, e.value.message) == ("INVALID_ARGUMENT", "bad value")


def test_different_shapes_or_dtypes_are_never_merged():
    model = Model(delay=0.01)
    seen = []

    def run(inputs):
        seen.append((inputs["x"].dtype, inputs["x"].shape[1:]))
        return model(inputs)

    with Batcher(run, params(max_batch_size=64, batch_timeout_micros=50_000)) as b:
        kinds = [(np.float32, 3), (np.float64, 3), (np.float32, 5)]
        barrier = threading.Barrier(9)
        outs = {}

        def go(i):
            dtype, width = kinds[i % 3]
            x = np.full((1, width), i, dtype=dtype)
            barrier.wait()
            outs[i] = (x, b.submit({"x": x}))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(outs) == 9
    for x, out in outs.values():
        assert out["y"].dtype == x.dtype and out["y"].shape == x.shape
        np.testing.assert_array_equal(out["y"], x * 2 + 1)
    assert len(seen) >= 3 and len(set(seen)) == 3


def test_mismatched_batch_dimensions_are_refused():
    with Batcher(Model(), params()) as b:
        with pytest.raises(ServingError, match="equal 0th-dimension size"):
            b.submit({"x": np.ones((2, 3)), "z": np.ones((3, 3))})
        with pytest.raises(ServingError, match="at least one dimension"):
            b.submit({"x": np.array(1.0)})


def test_output_without_batch_dimension_is_an_internal_error():
    with Batcher(lambda inputs: {"y": np.ones(())}, params()) as b:
        with pytest.raises(ServingError) as e:
            b.submit({"x": np.ones((2, 3))})
    assert e.value.code == "INTERNAL"


def test_close_fails_pending_requests_and_stops_threads():
    blocked_run, started, gate = gated_run()
    b = Batcher(blocked_run, params(max_batch_size=1, max_enqueued_batches=100))
    errors = []

    def call():
        try:
            b.submit({"x": np.ones((1, 1))})
        except ServingError as e:
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.05)
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.05)
    gate.set()
    closer.join(5)
    for t in threads:
        t.join(5)
    assert len(errors) == 3 and all(e.code == "UNAVAILABLE" for e in errors)
    assert not any(t.is_alive() for t in b._threads)
    with pytest.raises(ServingError) as e:
        b.submit({"x": np.ones((1, 1))})
    assert e.value.code == "UNAVAILABLE"


# -- the time a request may wait (submit's timeout_s) ------------------------------------------------------

class StuckRun:
    """A run function whose first call blocks until `gate` is set (a stuck batch); records every row it ran."""

    def __init__(self):
        self.gate, self.started = threading.Event(), threading.Event()
        self.rows = []
        self.lock = threading.Lock()

    def __call__(self, inputs):
        with self.lock:
            first = not self.rows
            self.rows.append(inputs["x"][:, 0].tolist())
        if first:
            self.started.set()
            self.gate.wait(30)
        return {"y": inputs["x"] * 2 + 1}


def submit_in_thread(b, value, rows=1, timeout_s=None):
    """Submit `rows` rows all equal to `value` from a new thread; returns (thread, outcome list)."""
    outcome = []

    def go():
        x = np.full((rows, 1), value, np.float32)
        try:
            outcome.append(b.submit({"x": x}, timeout_s=timeout_s))
        except ServingError as e:
            outcome.append(e)

    t = threading.Thread(target=go)
    t.start()
    return t, outcome


def wait_queued(b, rows):
    """Until `rows` rows are queued (the tasks are in; nothing about how long that took is asserted)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with b._cond:
            if sum(bt.size for q in b._queues.values() for bt in q.batches) >= rows:
                return
        time.sleep(0.001)
    raise AssertionError("the tasks were never queued")


def test_a_request_queued_past_its_time_limit_answers_deadline_exceeded_and_never_runs():
    run = StuckRun()
    b = Batcher(run, params(max_batch_size=2, batch_timeout_micros=0, max_enqueued_batches=10))
    try:
        a, a_out = submit_in_thread(b, 1.0)               # its batch runs and gets stuck
        assert run.started.wait(10)
        c, c_out = submit_in_thread(b, 3.0)               # queued behind it, no time limit
        wait_queued(b, 1)
        late, late_out = submit_in_thread(b, 2.0, timeout_s=0.05)  # queued in the same batch as c
        late.join(10)
        assert not late.is_alive()
        (err,) = late_out
        assert isinstance(err, ServingError)
        assert err.code == "DEADLINE_EXCEEDED" and err.http_status == 504
        assert err.message == ("Run() timeout exceeded while waiting in batching queue (the request's time "
                               "limit was 50 ms); it was not run")
        run.gate.set()                                    # the stuck batch ends; the queued batch runs
        a.join(10)
        c.join(10)
        np.testing.assert_array_equal(a_out[0]["y"], [[3.0]])
        np.testing.assert_array_equal(c_out[0]["y"], [[7.0]])   # the other request of that batch is answered
        assert run.rows == [[1.0], [3.0]]                 # the timed-out task never ran
        assert b.submit({"x": np.full((1, 1), 4.0, np.float32)}, timeout_s=30)["y"].tolist() == [[9.0]]
    finally:
        run.gate.set()
        b.close()


def test_a_request_whose_batch_is_stuck_running_gives_up_at_its_time_limit():
    run = StuckRun()
    b = Batcher(run, params(max_batch_size=2, batch_timeout_micros=0))
    try:
        a, a_out = submit_in_thread(b, 1.0, timeout_s=0.05)
        a.join(10)
        assert run.started.is_set() and not a.is_alive()
        (err,) = a_out
        assert err.code == "DEADLINE_EXCEEDED"
        assert err.message == ("Run() timeout exceeded while the batch with this request was running (the "
                               "request's time limit was 50 ms)")
        run.gate.set()
        assert b.submit({"x": np.full((1, 1), 2.0, np.float32)})["y"].tolist() == [[5.0]]
    finally:
        run.gate.set()
        b.close()


def test_a_split_request_past_its_time_limit_runs_none_of_its_queued_parts():
    run = StuckRun()
    p = params(max_batch_size=10, enable_large_batch_splitting=True, max_execution_batch_size=2,
               batch_timeout_micros=0, max_enqueued_batches=10)
    b = Batcher(run, p)
    try:
        a, a_out = submit_in_thread(b, 1.0)
        assert run.started.wait(10)
        big, big_out = submit_in_thread(b, 5.0, rows=5, timeout_s=0.05)   # three parts, all queued
        big.join(10)
        assert big_out[0].code == "DEADLINE_EXCEEDED" and "waiting in batching queue" in big_out[0].message
        run.gate.set()
        a.join(10)
        assert b.submit({"x": np.full((3, 1), 2.0, np.float32)})["y"].tolist() == [[5.0]] * 3
        assert 5.0 not in [v for rows in run.rows for v in rows]
    finally:
        run.gate.set()
        b.close()


def test_no_time_left_is_refused_before_queueing():
    model = Model()
    with Batcher(model, params()) as b:
        for timeout in (0.0, -1.0):
            with pytest.raises(ServingError) as e:
                b.submit({"x": np.ones((1, 3), np.float32)}, timeout_s=timeout)
            assert e.value.code == "DEADLINE_EXCEEDED"
        out = b.submit({"x": np.ones((2, 3), np.float32)}, timeout_s=30)
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 3.0))
    assert model.calls == [2]
