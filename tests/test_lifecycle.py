"""server/lifecycle.py: versions come and go under a running ModelManager, requests never fail.

Most tests use a fake loader (fast, fully controlled); the last ones load the real fixture models.
"""
import logging
import shutil
import sys
import threading
import time

import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2

from server.config import ModelSettings, parse_config_text, read_config_file, settings_from_proto
from server.errors import ServingError
from server.lifecycle import ModelManager

POLL = 0.05
State = get_model_status_pb2.ModelVersionStatus


class FakeServable:
    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
        self.signatures = {}
        self.unloaded = False

    def run(self, signature, inputs):
        assert not self.unloaded, "ran on an unloaded servable"
        return {"version": np.array(self.version)}

    def unload(self):
        self.unloaded = True


class FakeLoader:
    """Loads a folder unless it holds a file named BROKEN; can be held back with `gate`."""

    def __init__(self):
        self.loaded = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, name, version, path):
        assert self.gate.wait(10)
        import os
        if os.path.exists(os.path.join(path, "BROKEN")):
            raise ServingError("DATA_LOSS", f"broken model at {path}")
        s = FakeServable(name, version, path)
        self.loaded.append(s)
        return s


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def states(manager, name):
    return {s.version: State.State.Name(s.state) for s in manager.status(name).model_version_status}


@pytest.fixture
def base(tmp_path):
    b = tmp_path / "m"
    b.mkdir()
    return b


@pytest.fixture
def make_manager():
    managers = []

    def make(models, poll=POLL, loader=None, **kw):
        m = ModelManager(models, file_system_poll_wait_seconds=poll, loader=loader or FakeLoader(),
                         warmup=lambda s: None, **kw)
        managers.append(m)
        m.start()
        assert m.wait_until_settled(10)
        return m

    yield make
    for m in managers:
        m.stop()


def served(manager, name="m", **kw):
    with manager.acquire(name, **kw) as s:
        return int(s.run(None, {})["version"])


def test_discovers_numeric_versions_and_serves_the_highest(base, make_manager, caplog):
    for d in ("1", "2", ".tmp-3-1234", "notes"):
        (base / d).mkdir()
    caplog.set_level(logging.DEBUG, logger="server.lifecycle")
    m = make_manager([ModelSettings("m", str(base))])
    assert served(m) == 2
    assert states(m, "m") == {2: "AVAILABLE"}
    assert [v.version for v in m.status("m").model_version_status] == [2]
    assert "Ignoring non-version folder" in caplog.text and ".tmp-3-1234" in caplog.text
    assert "Successfully loaded servable version m 2" in caplog.text


def test_new_version_takes_over_and_old_one_unloads(base, make_manager):
    (base / "1").mkdir()
    loader = FakeLoader()
    m = make_manager([ModelSettings("m", str(base))], loader=loader)
    (base / "2").mkdir()
    assert m.wait_until_settled(10)
    assert served(m) == 2
    assert states(m, "m") == {2: "AVAILABLE", 1: "END"}
    assert loader.loaded[0].unloaded
    shutil.rmtree(base / "2")           # the newest disappears: the previous one comes back
    assert m.wait_until_settled(10)
    assert served(m) == 1
    assert states(m, "m") == {2: "END", 1: "AVAILABLE"}
    shutil.rmtree(base / "1")           # no version left on disk: nothing is served
    assert m.wait_until_settled(10)
    assert states(m, "m") == {2: "END", 1: "END"}
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(m\)"):
        served(m)


def test_request_in_flight_keeps_its_version_until_done(base, make_manager):
    (base / "1").mkdir()
    m = make_manager([ModelSettings("m", str(base))])
    with m.acquire("m") as old:
        (base / "2").mkdir()
        assert m.wait_until_settled(10)
        assert served(m) == 2                       # new requests get the new version
        assert states(m, "m")[1] == "UNLOADING"     # the old one waits for us
        assert not old.unloaded
        assert int(old.run(None, {})["version"]) == 1
    assert wait_for(lambda: states(m, "m")[1] == "END")
    assert old.unloaded


def test_requests_never_get_a_version_while_it_unloads(base, make_manager):
    # Check-out takes no lock (ModelManager._checkout): requests race the manager's unloads here,
    # with thread switches forced as often as CPython allows. FakeServable.run fails on an unloaded
    # servable, so a request handed a version that is being unloaded shows up as a failure.
    (base / "1").mkdir()
    loader = FakeLoader()
    m = make_manager([ModelSettings("m", str(base))], poll=0.005, loader=loader)
    stop, failures, served_by = threading.Event(), [], []

    def client():
        while not stop.is_set():
            try:
                served_by.append(served(m))
            except Exception as e:  # noqa: BLE001 - availability first: there is always a version
                failures.append(repr(e))

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=client) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for _ in range(10):               # version 2 comes and goes: each time one of them unloads
            (base / "2").mkdir()
            assert wait_for(lambda: states(m, "m") == {2: "AVAILABLE", 1: "END"})
            shutil.rmtree(base / "2")
            assert wait_for(lambda: states(m, "m") == {2: "END", 1: "AVAILABLE"})
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        sys.setswitchinterval(switch)
    assert failures == []
    assert set(served_by) == {1, 2} and len(served_by) > 100
    assert sum(s.unloaded for s in loader.loaded) == 20   # every swap unloaded one version
    assert all(v.refs == 0 for per_model in m._versions.values() for v in per_model.values())


def test_a_checkout_that_loses_the_race_with_an_unload_lets_go_and_looks_again(base, make_manager):
    # The interleaving the lock-free check-out must survive, made to happen: the request has found
    # version 2 as the latest, and the manager begins to unload it before the request registers.
    for d in ("1", "2"):
        (base / d).mkdir()
    m = make_manager([ModelSettings("m", str(base), policy="all")], poll=0)
    v1, v2 = m._versions["m"][1], m._versions["m"][2]

    class UnloadFirst(list):
        def append(self, item):
            if not hasattr(self, "done"):
                self.done = True
                with m._lock:
                    m._set(v2, State.UNLOADING)  # what _sync_model does when 2 is no longer wanted
            super().append(item)

    v2.holders = UnloadFirst()
    with m.acquire("m") as s:
        assert s.version == 1                 # not the version being unloaded
        assert (v1.refs, v2.refs) == (1, 0)
    assert (v1.refs, v2.refs) == (0, 0)


def test_loading_happens_off_the_request_path(base, make_manager):
    (base / "1").mkdir()
    loader = FakeLoader()
    m = make_manager([ModelSettings("m", str(base))], loader=loader)
    loader.gate.clear()                 # the next load blocks
    (base / "2").mkdir()
    assert wait_for(lambda: states(m, "m").get(2) == "LOADING")
    for _ in range(20):                 # meanwhile requests are served by version 1
        assert served(m) == 1
    loader.gate.set()
    assert wait_for(lambda: states(m, "m").get(2) == "AVAILABLE")
    assert served(m) == 2


def test_broken_version_never_takes_over_and_is_retried_when_fixed(base, make_manager):
    (base / "1").mkdir()
    m = make_manager([ModelSettings("m", str(base))])
    (base / "2").mkdir()
    (base / "2" / "BROKEN").write_text("x")
    assert m.wait_until_settled(10)
    assert served(m) == 1
    status = {s.version: s for s in m.status("m").model_version_status}
    assert State.State.Name(status[2].state) == "END"
    assert status[2].status.error_code == 15     # DATA_LOSS
    assert "broken model at" in status[2].status.error_message
    assert State.State.Name(status[1].state) == "AVAILABLE"
    assert status[1].status.error_code == 0
    assert m.wait_until_settled(10)               # unchanged files: no retry, still broken
    assert served(m) == 1
    (base / "2" / "BROKEN").unlink()             # fixed: retried
    (base / "2" / "saved_model.pb").write_text("ok")
    assert m.wait_until_settled(10)
    assert served(m) == 2
    assert m.status("m", version=2).model_version_status[0].status.error_message == ""


def test_version_policies(tmp_path, make_manager):
    def model(name, policy):
        b = tmp_path / name
        for v in ("1", "2", "3"):
            (b / v).mkdir(parents=True)
        cfg = parse_config_text(f"model_config_list {{ config {{ name: '{name}' base_path: '{b}' "
                                f"model_platform: 'tensorflow' model_version_policy {{ {policy} }} }} }}")
        return settings_from_proto(cfg)[0]

    m = make_manager([model("latest2", "latest { num_versions: 2 }"), model("all", "all {}"),
                      model("specific", "specific { versions: 1 versions: 7 }")])
    assert m.available_versions("latest2") == [2, 3]
    assert m.available_versions("all") == [1, 2, 3]
    assert m.available_versions("specific") == [1]
    assert served(m, "specific") == 1
    assert served(m, "all", version=2) == 2
    (tmp_path / "specific" / "7").mkdir()          # the listed version appears later
    assert m.wait_until_settled(10)
    assert m.available_versions("specific") == [1, 7]
    assert served(m, "specific") == 7


def test_not_found_messages_match_tf_serving(base, make_manager):
    (base / "1").mkdir()
    m = make_manager([ModelSettings("m", str(base), labels={"stable": 1})])
    cases = [
        (lambda: served(m, "nope"), "NOT_FOUND", "Servable not found for request: Latest(nope)"),
        (lambda: served(m, version=5), "NOT_FOUND", "Servable not found for request: Specific(m, 5)"),
        (lambda: served(m, label="x"), "INVALID_ARGUMENT", "Unrecognized servable version label: x"),
        (lambda: m.status("nope"), "NOT_FOUND", "Could not find any versions of model nope"),
        (lambda: m.status("m", version=5), "NOT_FOUND", "Could not find version 5 of model m"),
        (lambda: m.status("m", label="x"), "INVALID_ARGUMENT", "Unrecognized servable version label: x"),
    ]
    for call, code, message in cases:
        with pytest.raises(ServingError) as e:
            call()
        assert (e.value.code, e.value.message) == (code, message)
        assert e.value.http_status == {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400}[code]


def test_labels_from_initial_config_and_after_reload(base, make_manager):
    (base / "1").mkdir()
    (base / "2").mkdir()
    m = make_manager([ModelSettings("m", str(base), policy="all",
                                    labels={"stable": 1, "canary": 2, "next": 3})])
    assert served(m, label="stable") == 1
    assert served(m, label="canary") == 2
    assert m.status("m", label="stable").model_version_status[0].version == 1
    with pytest.raises(ServingError) as e:       # label known, version not available yet
        served(m, label="next")
    assert e.value.code == "UNAVAILABLE" and "not available yet" in e.value.message
    (base / "3").mkdir()
    assert m.wait_until_settled(10)
    assert served(m, label="next") == 3          # applies as soon as its version is AVAILABLE
    m.reload_config([ModelSettings("m", str(base), policy="all", labels={"stable": 2})])
    assert m.wait_until_settled(10)
    assert served(m, label="stable") == 2
    with pytest.raises(ServingError, match="Unrecognized servable version label: canary"):
        served(m, label="canary")


def test_reload_config_adds_removes_and_changes_models(tmp_path, make_manager):
    for name in ("a", "b"):
        for v in ("1", "2"):
            (tmp_path / name / v).mkdir(parents=True)
    a, b = (ModelSettings(n, str(tmp_path / n)) for n in "ab")
    m = make_manager([a])
    assert m.models() == ["a"]
    m.reload_config([a, b])
    assert m.wait_until_settled(10)
    assert served(m, "b") == 2
    m.reload_config([ModelSettings("b", str(tmp_path / "b"), policy="specific", versions=frozenset({1}))])
    assert m.wait_until_settled(10)
    assert m.models() == ["b"]
    assert served(m, "b") == 1
    assert states(m, "b") == {2: "END", 1: "AVAILABLE"}
    with pytest.raises(ServingError, match=r"Latest\(a\)"):
        served(m, "a")
    assert states(m, "a") == {2: "END"}          # TF Serving keeps reporting unloaded versions


def test_config_file_watch_applies_changes_and_keeps_running_config_on_errors(tmp_path, make_manager, caplog):
    for name in ("a", "b"):
        (tmp_path / name / "1").mkdir(parents=True)
    path = tmp_path / "models.config"

    def write(names, extra=""):
        body = " ".join(f"config {{ name: '{n}' base_path: '{tmp_path / n}' model_platform: 'tensorflow' }}"
                        for n in names)
        path.write_text(f"model_config_list {{ {body} }} {extra}")

    write("a")
    m = make_manager(read_config_file(str(path)))
    m.watch_config_file(str(path), 0.05)
    write("ab")
    assert wait_for(lambda: m.available_versions("b") == [1])
    write("ab", extra="this is not a config")
    assert wait_for(lambda: "keeping the running config" in caplog.text)
    assert m.available_versions("a") == [1] and m.available_versions("b") == [1]


def test_zero_poll_loads_once(base, make_manager):
    (base / "1").mkdir()
    m = make_manager([ModelSettings("m", str(base))], poll=0)
    (base / "2").mkdir()
    time.sleep(0.2)
    assert m.wait_until_settled(10)
    assert served(m) == 1


def test_state_hook_and_stop_unloads_everything(base):
    (base / "1").mkdir()
    events = []
    loader = FakeLoader()
    m = ModelManager([ModelSettings("m", str(base))], file_system_poll_wait_seconds=POLL, loader=loader,
                     warmup=lambda s: None, on_state=lambda n, v, st, err: events.append((n, v, st)))
    m.start()
    assert m.wait_until_settled(10)
    m.stop()
    assert events == [("m", 1, "START"), ("m", 1, "LOADING"), ("m", 1, "AVAILABLE"),
                      ("m", 1, "UNLOADING"), ("m", 1, "END")]
    assert loader.loaded[0].unloaded


# --------------------------------------------------------------------------- real models


@pytest.fixture
def half_plus_two(testdata):
    return testdata / "saved_model_half_plus_two_2_versions"


def predict(manager, name="m", x=(1.0, 2.0)):
    with manager.acquire(name) as s:
        sig = s.signatures["serving_default"]
        y = s.run(sig, {"x": np.array(x, dtype=np.float32).reshape(-1, 1)})["y"]
        return s.version, y.ravel().tolist()


def test_swap_under_concurrent_load_has_zero_failures(base, half_plus_two):
    shutil.copytree(half_plus_two / "00000123", base / "1")
    m = ModelManager([ModelSettings("m", str(base))], file_system_poll_wait_seconds=POLL)
    m.start()
    try:
        assert m.wait_until_settled(60)
        stop, failures, seen = threading.Event(), [], set()

        def client():
            while not stop.is_set():
                try:
                    version, y = predict(m)
                    assert y == [2.5, 3.0]
                    seen.add(version)
                except Exception as e:  # noqa: BLE001 - any failure counts
                    failures.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        shutil.copytree(half_plus_two / "00000124", base / "2")
        assert wait_for(lambda: m.available_versions("m") == [2], 60)
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
        assert failures == []
        assert seen == {1, 2}
        assert states(m, "m") == {2: "AVAILABLE", 1: "END"}
    finally:
        m.stop()


@pytest.mark.parametrize("damage", ["truncated_pb", "missing_variables"])
def test_corrupt_real_version_never_takes_over(base, half_plus_two, damage):
    shutil.copytree(half_plus_two / "00000123", base / "1")
    staged = base.parent / "staging"     # damaged outside the base path, then moved in at once
    shutil.copytree(half_plus_two / "00000124", staged)
    if damage == "truncated_pb":
        pb = staged / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:100])
    else:
        shutil.rmtree(staged / "variables")
    m = ModelManager([ModelSettings("m", str(base))], file_system_poll_wait_seconds=POLL)
    m.start()
    try:
        assert m.wait_until_settled(60)
        staged.rename(base / "2")
        assert m.wait_until_settled(60)
        assert predict(m) == (1, [2.5, 3.0])
        status = {s.version: s for s in m.status("m").model_version_status}
        assert State.State.Name(status[2].state) == "END"
        assert status[2].status.error_code != 0 and status[2].status.error_message
        assert State.State.Name(status[1].state) == "AVAILABLE"
    finally:
        m.stop()


def test_two_model_config_serves_one_and_reports_the_other(tmp_path, testdata):
    text = (testdata / "good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(testdata / "saved_model_half_plus_two_cpu"))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}", str(testdata / "saved_model_half_plus_three"))
    (tmp_path / "models.config").write_text(text)
    m = ModelManager(read_config_file(str(tmp_path / "models.config")), file_system_poll_wait_seconds=0)
    m.start()
    try:
        assert m.wait_until_settled(60)
        assert predict(m, "half_plus_two") == (123, [2.5, 3.0])
        (three,) = m.status("half_plus_three").model_version_status
        assert three.version == 123
        # Whether half_plus_three loads is the loader's business (server/servable.py); either way
        # the manager must report it consistently and keep serving half_plus_two.
        if State.State.Name(three.state) == "AVAILABLE":
            assert predict(m, "half_plus_three") == (123, [3.5, 4.0])
        else:
            assert State.State.Name(three.state) == "END" and three.status.error_message
            with pytest.raises(ServingError, match=r"Latest\(half_plus_three\)"):
                predict(m, "half_plus_three")
    finally:
        m.stop()


# -- tensorflow_model_server's loading flags -------------------------------------------------

class FlakyLoader(FakeLoader):
    """Fails the first `failures` load attempts of every version, then loads."""

    def __init__(self, failures):
        super().__init__()
        self.failures, self.attempts = failures, {}

    def __call__(self, name, version, path):
        n = self.attempts[(name, version)] = self.attempts.get((name, version), 0) + 1
        if n <= self.failures:
            raise ServingError("UNAVAILABLE", f"attempt {n} failed")
        return super().__call__(name, version, path)


def test_a_version_that_fails_twice_loads_on_the_third_try(base, make_manager):
    (base / "1").mkdir()
    loader = FlakyLoader(failures=2)
    m = make_manager([ModelSettings("m", str(base))], loader=loader, max_num_load_retries=2,
                     load_retry_interval_micros=1000)
    assert served(m) == 1 and loader.attempts == {("m", 1): 3}
    assert states(m, "m") == {1: "AVAILABLE"}


def test_load_retries_give_up_after_max_num_load_retries(base, make_manager):
    (base / "1").mkdir()
    loader = FlakyLoader(failures=2)
    m = make_manager([ModelSettings("m", str(base))], loader=loader, max_num_load_retries=1,
                     load_retry_interval_micros=-1)
    assert loader.attempts == {("m", 1): 2}
    (status,) = m.status("m").model_version_status
    assert State.State.Name(status.state) == "END" and status.status.error_message == "attempt 2 failed"
    m2 = make_manager([ModelSettings("m", str(base))], loader=FlakyLoader(failures=1))  # default: one try
    assert states(m2, "m") == {1: "END"}


def test_num_load_threads_loads_versions_at_the_same_time(tmp_path, make_manager):
    for name in ("a", "b"):
        (tmp_path / name / "1").mkdir(parents=True)
    barrier = threading.Barrier(2, timeout=10)  # both loads must be under way together to pass it
    threads = set()

    class Meeting(FakeLoader):
        def __call__(self, name, version, path):
            barrier.wait()
            threads.add(threading.current_thread().name)
            return super().__call__(name, version, path)

    m = make_manager([ModelSettings(n, str(tmp_path / n)) for n in ("a", "b")], loader=Meeting(),
                     num_load_threads=2)
    assert served(m, "a") == 1 and served(m, "b") == 1
    assert len(threads) == 2 and all(t.startswith("model-load") for t in threads)


def test_num_unload_threads_unloads_in_its_pool(base, make_manager):
    (base / "1").mkdir()
    (base / "2").mkdir()
    unloaded_in = []

    class Tracked(FakeServable):
        def unload(self):
            unloaded_in.append(threading.current_thread().name)
            super().unload()

    m = make_manager([ModelSettings("m", str(base), policy="all")],
                     loader=lambda n, v, p: Tracked(n, v, p), num_unload_threads=2)
    assert m.available_versions("m") == [1, 2]
    m.stop()
    assert len(unloaded_in) == 2 and all(t.startswith("model-unload") for t in unloaded_in)


@pytest.mark.parametrize("allow", [False, True])
def test_allow_version_labels_for_unavailable_models(base, make_manager, allow):
    (base / "1").mkdir()
    settings = dict(name="m", base_path=str(base), policy="all")
    m = make_manager([ModelSettings(**settings, labels={"stable": 1, "next": 3})],
                     allow_version_labels_for_unavailable_models=allow)
    assert served(m, label="stable") == 1
    with pytest.raises(ServingError) as e:        # the model's first labels wait for their versions
        served(m, label="next")
    assert e.value.code == "UNAVAILABLE" and "not available yet" in e.value.message
    (base / "3").mkdir()
    assert m.wait_until_settled(10)
    assert served(m, label="next") == 3
    # A label in use moves only to an AVAILABLE version, whatever the flag: the update is refused whole.
    m.reload_config([ModelSettings(**settings, labels={"stable": 9, "next": 1})])
    assert served(m, label="stable") == 1 and served(m, label="next") == 3
    # A new label for a version that is not available: only with the flag.
    m.reload_config([ModelSettings(**settings, labels={"stable": 3, "canary": 9})])
    assert served(m, label="stable") == (3 if allow else 1)
    with pytest.raises(ServingError) as e:
        served(m, label="canary")
    assert e.value.code == ("UNAVAILABLE" if allow else "INVALID_ARGUMENT")
