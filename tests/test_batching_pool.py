"""server/batching/pool.py: one batcher per served version and signature, living and dying with its version."""
import numpy as np
import pytest

from server.batching.parameters import BatchingParameters
from server.errors import ServingError


def params(**kw):
    return BatchingParameters(**{"num_batch_threads": 1, **kw})


def test_read_parameters_defaults_and_config_error(tmp_path):
    from server.batching import read_parameters
    from server.config import ConfigError
    assert read_parameters(None).max_batch_size == 1000
    bad = tmp_path / "b.txt"
    bad.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(ConfigError) as e:
        read_parameters(bad)
    assert e.value.http_status == 400 and "Last entry in allowed_batch_sizes" in e.value.message


class FakeServable:
    def __init__(self, name="m", version=1):
        self.name, self.version, self.runs = name, version, []

    def run(self, signature, inputs):
        self.runs.append(next(iter(inputs.values())).shape[0])
        return {"y": inputs["x"] + 1}


def _sig(name, in_shape, out_shape):
    from types import SimpleNamespace
    spec = lambda shape: SimpleNamespace(shape=shape)  # noqa: E731 - only .shape is read
    return SimpleNamespace(name=name, inputs={"x": spec(in_shape)}, outputs={"y": spec(out_shape)})


def test_batcher_pool_batches_only_batchable_signatures():
    from server.batching import BatcherPool
    pool = BatcherPool(params(max_batch_size=8))
    try:
        s = FakeServable()
        submit = pool.batcher_for(s, _sig("call", (-1, 3), (-1, 3)))
        assert submit is not None and pool.batcher_for(s, _sig("call", (-1, 3), (-1, 3))) is not None
        np.testing.assert_array_equal(submit({"x": np.zeros((2, 3))})["y"], np.ones((2, 3)))
        assert s.runs == [2]
        assert pool.batcher_for(s, _sig("scalar_out", (-1, 3), ())) is None
        assert pool.batcher_for(s, _sig("fixed", (2, 3), (2, 3))) is None
        assert pool.batcher_for(s, _sig("unknown_rank", None, (-1,))) is None
        reloaded = FakeServable()
        pool.batcher_for(reloaded, _sig("call", (-1, 3), (-1, 3)))({"x": np.zeros((1, 3))})
        assert reloaded.runs == [1] and s.runs == [2]
    finally:
        pool.close()
    with pytest.raises(ServingError) as e:
        submit({"x": np.zeros((1, 3))})
    assert e.value.code == "UNAVAILABLE"


def test_version_ended_closes_its_batchers_and_lets_its_servable_go():
    import gc
    import weakref

    from server.batching import BatcherPool
    pool = BatcherPool(params(max_batch_size=8, num_batch_threads=3))
    try:
        s1, s2 = FakeServable(version=1), FakeServable(version=2)
        for s in (s1, s2):
            pool.batcher_for(s, _sig("call", (-1, 3), (-1, 3)))({"x": np.zeros((1, 3))})
        threads = [t for b in (pool._batchers[("m", 1, "call")][1],) for t in b._threads]
        assert pool.live_batchers() == 2 and all(t.is_alive() for t in threads)
        ref = weakref.ref(s1)
        pool.version_ended("m", 1)
        assert pool.live_batchers() == 1 and not any(t.is_alive() for t in threads)
        # A caller that still had version 1 in hand runs directly; no new batcher is made for it.
        assert pool.batcher_for(s1, _sig("call", (-1, 3), (-1, 3))) is None and pool.live_batchers() == 1
        del s1, threads
        gc.collect()
        assert ref() is None, "the pool keeps an unloaded servable alive"
        # Version 2 is untouched; a reload of version 1 (a new servable) gets a new batcher.
        assert pool.batcher_for(s2, _sig("call", (-1, 3), (-1, 3))) is not None
        s1b = FakeServable(version=1)
        pool.batcher_for(s1b, _sig("call", (-1, 3), (-1, 3)))({"x": np.zeros((2, 3))})
        assert s1b.runs == [2] and pool.live_batchers() == 2
    finally:
        pool.close()
    assert pool.live_batchers() == 0


def test_per_model_batching_parameters_from_the_version_folder(tmp_path):
    from server.batching import BatcherPool
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    (tmp_path / "1" / "batching_params.pbtxt").write_text(
        "max_batch_size { value: 4 } num_batch_threads { value: 7 } thread_pool_name { value: 'mine' }")
    (tmp_path / "2" / "batching_params.pbtxt").write_text("max_batch_size { value: 4 } nonsense: 1")
    glob = params(max_batch_size=8, num_batch_threads=2, thread_pool_name="global_pool")
    pool = BatcherPool(glob, per_model=True)
    try:
        s1 = FakeServable(version=1)
        s1.path = str(tmp_path / "1")
        pool.version_loaded(s1)
        pool.batcher_for(s1, _sig("call", (-1, 3), (-1, 3)))
        b = pool._batchers[("m", 1, "call")][1]
        # The version's own values, except the batch threads (number and name) of the global file.
        assert (b.params.max_batch_size, b.params.num_batch_threads, b.params.thread_pool_name) == (
            4, 2, "global_pool")
        with pytest.raises(ServingError) as e:
            b.submit({"x": np.zeros((5, 3))})
        assert "larger than maximum input batch size 4" in e.value.message
        s2 = FakeServable(version=2)
        s2.path = str(tmp_path / "2")
        with pytest.raises(ServingError) as e:      # a bad file fails that version's load
            pool.version_loaded(s2)
        assert e.value.code == "INVALID_ARGUMENT" and 'no field named "nonsense"' in e.value.message
        s3 = FakeServable(version=3)                # no file: the global parameters
        s3.path = str(tmp_path / "3")
        pool.version_loaded(s3)
        pool.batcher_for(s3, _sig("call", (-1, 3), (-1, 3)))
        assert pool._batchers[("m", 3, "call")][1].params == glob
    finally:
        pool.close()
    off = BatcherPool(glob)                          # without the flag the folder's file is not read
    try:
        off.version_loaded(s1)
        off.batcher_for(s1, _sig("call", (-1, 3), (-1, 3)))
        assert off._batchers[("m", 1, "call")][1].params == glob
    finally:
        off.close()
