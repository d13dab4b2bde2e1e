"""server/worker.py: one worker process's wiring (manager, batching, API, REST app) without a real process."""
import gc
import os
import shutil
import threading
import weakref

import pytest

from server import cli
from server import worker as worker_mod

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu/00000123"
BODY = b'{"instances": [[1.0], [2.0]]}'


def publish(testdata, base, version):
    tmp = base / f".tmp-{version}"
    shutil.copytree(testdata / HALF_PLUS_TWO, tmp)
    tmp.rename(base / str(version))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()


def test_version_swaps_with_batching_leak_neither_threads_nor_servables(testdata, tmp_path, monkeypatch):
    """Issue: every swap left a batcher (4 threads) and the old servable behind. 22 swaps under load."""
    base = tmp_path / "m"
    base.mkdir()
    publish(testdata, base, 1)
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 } batch_timeout_micros { value: 1000 } "
                        "num_batch_threads { value: 4 }")
    loaded = []
    make_loader = worker_mod.make_loader

    def recording_loader(options):
        load = make_loader(options)

        def record(name, version, path):
            servable = load(name, version, path)
            loaded.append(weakref.ref(servable))
            return servable
        return record

    monkeypatch.setattr(worker_mod, "make_loader", recording_loader)
    options = cli.build_options(["--rest_api_port=8501", "--model_name=m", f"--model_base_path={base}",
                                 f"--batching_parameters_file={batching}", "--max_num_load_retries=0",
                                 "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=-1"])
    worker = worker_mod.Worker(options).start()
    stop, failures, answers = threading.Event(), [], [0]

    def light_load():
        client = worker.app.test_client()
        while not stop.is_set() and answers[0] < 20000:
            r = client.post("/v1/models/m:predict", data=BODY)
            if r.status_code != 200 or r.get_json() != {"predictions": [[2.5], [3.0]]}:
                failures.append((r.status_code, r.data[:200]))
            answers[0] += 1

    try:
        assert worker.manager.wait_until_settled(60)
        load = threading.Thread(target=light_load, daemon=True)
        load.start()
        counts = []
        for version in range(2, 24):
            publish(testdata, base, version)
            for _ in range(100):    # loaded, the old one unloaded (it may wait for a request to let go)
                worker.manager.wait_until_settled(60)
                states = {s.version: s.state for s in worker.manager.status("m").model_version_status}
                if worker.manager.available_versions("m") == [version] and states.get(version - 1) == 4:
                    break
            assert worker.manager.available_versions("m") == [version]
            counts.append((threading.active_count(), os_threads(), worker.batchers.live_batchers()))
        stop.set()
        load.join(30)
        gc.unfreeze()
        gc.collect()
        alive = [r for r in loaded if r() is not None]
        assert failures == [], failures[:3]
        assert answers[0] > 0
        assert len(loaded) == 23 and len(alive) == 1, f"{len(alive)} of {len(loaded)} servables still alive"
        # One version's batcher at a time, so the thread counts stay where the first swap left them.
        assert max(c[2] for c in counts) == 1, counts
        first, last = counts[0], counts[-1]
        assert last[0] <= first[0] and last[1] <= first[1] + 2, counts
    finally:
        stop.set()
        worker.stop()
    assert worker.batchers.live_batchers() == 0


def test_worker_passes_the_lifecycle_flags_to_the_manager(testdata, tmp_path):
    options = cli.build_options(["--rest_api_port=8501", "--model_name=m",
                                 f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
                                 "--max_num_load_retries=3", "--load_retry_interval_micros=5000",
                                 "--num_load_threads=2", "--num_unload_threads=3",
                                 "--allow_version_labels_for_unavailable_models"])
    worker = worker_mod.Worker(options)   # not started: nothing loads
    m = worker.manager
    assert (m._max_retries, m._retry_interval, m._allow_unavailable_labels) == (3, 0.005, True)
    assert (m._load_pool._max_workers, m._unload_pool._max_workers) == (2, 3)
    worker.stop()


@pytest.mark.parametrize("flags, iterations", [([], [1]), (["--num_request_iterations_for_warmup=3"], [3]),
                                               (["--enable_model_warmup=false"], [])])
def test_warmup_flags(flags, iterations, monkeypatch):
    import server.warmup
    calls = []
    monkeypatch.setattr(server.warmup, "run_warmup", lambda s, num_request_iterations=1: calls.append(
        num_request_iterations) or 5)
    options = cli.build_options(["--rest_api_port=8501", "--model_base_path=/x", *flags], check_paths=False)
    assert worker_mod.make_warmup(options)(object()) == (5 if iterations else 0)
    assert calls == iterations


def test_grpc_front_end_is_started_and_stopped_with_the_worker(testdata, monkeypatch):
    import sys
    import types
    events = []

    class GrpcServer:
        def __init__(self, dataplane, options, metrics=None):
            events.append(("made", dataplane is not None, options.port))

        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")

    monkeypatch.setitem(sys.modules, "server.grpc.server", types.SimpleNamespace(GrpcServer=GrpcServer))
    monkeypatch.setattr(worker_mod, "grpc_front_end_available", lambda: True)
    base = ["--rest_api_port=8501", "--model_name=m", f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}",
            "--file_system_poll_wait_seconds=0"]
    worker = worker_mod.Worker(cli.build_options([*base, "--port=9123"]))
    assert events == [("made", True, 9123)]
    worker.start()
    worker.stop()
    assert events == [("made", True, 9123), "start", "stop"]
    assert worker_mod.Worker(cli.build_options([*base, "--port=0"])).front_ends == []   # gRPC off


def test_front_ends_open_only_after_the_first_load(testdata, monkeypatch):
    """As TF Serving's ServerCore, a worker serves nothing before its models' first load is over: with
    several workers, one still loading must not answer 404 "Servable not found" beside a ready one."""
    import time
    make_loader = worker_mod.make_loader
    seen = []

    def slow_loader(options):
        load = make_loader(options)

        def slow(name, version, path):
            time.sleep(1.0)
            return load(name, version, path)
        return slow

    class GrpcServer:
        def __init__(self, dataplane, options, metrics=None):
            pass

        def start(self):
            seen.append(worker.manager.available_versions("m"))

        def stop(self):
            pass

    import sys
    import types
    monkeypatch.setattr(worker_mod, "make_loader", slow_loader)
    monkeypatch.setitem(sys.modules, "server.grpc.server", types.SimpleNamespace(GrpcServer=GrpcServer))
    monkeypatch.setattr(worker_mod, "grpc_front_end_available", lambda: True)
    options = cli.build_options(["--rest_api_port=8501", "--port=9123", "--model_name=m",
                                 f"--model_base_path={testdata / 'saved_model_half_plus_two_cpu'}"])
    worker = worker_mod.Worker(options)
    try:
        worker.start()
        assert seen == [[123]]                                   # the front end opened with the model loaded
        r = worker.app.test_client().post("/v1/models/m:predict", data=BODY)
        assert r.status_code == 200, r.data
    finally:
        worker.stop()


@pytest.mark.parametrize("iterations", [2, 0])
def test_platform_config_batching_and_warmup_reach_the_worker(tmp_path, monkeypatch, iterations):
    # --platform_config_file's SessionBundleConfig turns batching on with its parameters and sets warm-up,
    # whatever --enable_batching and --num_request_iterations_for_warmup say; num_request_iterations 0
    # is used as given (TF Serving reads the records and replays none), not as "unset".
    import server.warmup
    platform = tmp_path / "platform.txt"
    platform.write_text("platform_configs { key: 'tensorflow' value { source_adapter_config { "
                        "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { "
                        "legacy_config { batching_parameters { max_batch_size { value: 8 } "
                        "num_batch_threads { value: 2 } } enable_model_warmup: true "
                        "model_warmup_options { num_request_iterations { value: %d } } } } } } }" % iterations)
    options = cli.build_options(["--rest_api_port=8501", "--model_base_path=/x", f"--platform_config_file={platform}",
                                 "--enable_batching=false", "--num_request_iterations_for_warmup=7"],
                                check_paths=False)
    worker = worker_mod.Worker(options)   # not started: nothing loads
    try:
        assert worker.batchers is not None
        assert (worker.batchers.params.max_batch_size, worker.batchers.params.num_batch_threads) == (8, 2)
    finally:
        worker.stop()
    calls = []
    monkeypatch.setattr(server.warmup, "run_warmup", lambda s, num_request_iterations=1, batcher_for=None: calls.append(
        num_request_iterations) or 5)
    assert worker_mod.make_warmup(options)(object()) == 5 and calls == [iterations]
