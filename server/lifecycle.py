"""The model/version registry: which versions are served, loading and unloading them in the background.

Like TF Serving's ServerCore + AspiredVersionsManager, in one small class:

- One worker thread scans each model's base path (numeric sub-folders are versions), asks the
  version policy which ones are wanted, loads and warms up new ones, then unloads the unwanted ones,
  but only once a wanted version is AVAILABLE (availability first: a broken new version never takes
  over a working one). Requests never wait on a load.
- `acquire()` hands out a ref-counted servable; a version being replaced stays usable by the requests
  that hold it and is unloaded once the last one lets go. Requests take no lock: they look the version
  up in a snapshot of what is AVAILABLE (rebuilt under the lock at every state change) and check it
  out with one atomic list append (see ModelManager._checkout).
- States and messages follow TF Serving (START, LOADING, AVAILABLE, UNLOADING, END; "Servable not
  found for request: Latest(m)", "Could not find version 3 of model m", ...).
- A failed load is retried `max_num_load_retries` times, `load_retry_interval_micros` apart (TF Serving's
  LoaderHarness); a version that still fails keeps its error (END + error status) and is tried again
  when its files change.
- `num_load_threads` / `num_unload_threads` > 0: versions load / unload that many at a time in a
  thread pool; 0 (the default): one at a time in the manager's thread.
- Version labels follow TF Serving's ServerCore: a label may only name an AVAILABLE version, unless
  `allow_version_labels_for_unavailable_models` is set and the label is not in use yet. The labels of
  a model that serves no version yet (at start, or added by a reload) wait for their versions to load,
  as TF Serving waits for new models before it assigns their labels (meanwhile they answer
  UNAVAILABLE); a reloaded config whose labels break the rule keeps the labels in force and logs TF
  Serving's error.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from . import config as config_mod
from .config import ConfigError, ModelSettings
from .errors import ServingError
from .version_discovery import discover_versions, fingerprint
from .version_labels import (
    AVAILABLE,
    END,
    LOADING,
    START,
    UNLOADING,
    LabelsAndStatus,
    Routes,
    State,
    Version,
    label_version,
)

log = logging.getLogger("server.lifecycle")


class _Lease:
    """What `ModelManager.acquire` returns: checks a version out on enter, back in on exit.

    A plain class rather than a generator-based context manager: it runs on every request.
    """
    __slots__ = ("_manager", "_key", "_version")

    def __init__(self, manager: "ModelManager", name: str, version: int | None, label: str | None):
        self._manager, self._key = manager, (name, version, label)
        self._version: Version | None = None

    def __enter__(self):
        self._version = self._manager._checkout(*self._key)
        return self._version.servable

    def __exit__(self, *exc) -> None:
        if self._version is not None:
            self._manager._release(self._version)


class ModelManager(LabelsAndStatus):
    """Serves the models of a config. start(), then acquire()/status() from any thread; stop() at the end.

    loader(name, version, path) -> servable (server.servable.load_servable by default).
    warmup(servable) runs before a version becomes AVAILABLE (server.warmup.run_warmup by default).
    on_state(name, version, state_name, error) is called after every state change, with the manager's
    lock held: it may log or record, but must not call back into the manager.
    The keyword arguments are tensorflow_model_server's flags of the same names (max_num_load_retries
    defaults to 0 here, a single attempt; the command line passes TF Serving's default, 5).
    """

    def __init__(self, models: list[ModelSettings], *, file_system_poll_wait_seconds: float = 1.0,
                 loader: Callable | None = None, warmup: Callable | None = None,
                 on_state: Callable | None = None, max_num_load_retries: int = 0,
                 load_retry_interval_micros: int = 60_000_000, num_load_threads: int = 0,
                 num_unload_threads: int = 0, allow_version_labels_for_unavailable_models: bool = False):
        if loader is None:
            from .servable import load_servable
            loader = load_servable
        if warmup is None:
            from .warmup import run_warmup
            warmup = run_warmup
        self._loader: Callable = loader
        self._warmup: Callable = warmup
        self._on_state = on_state
        self._poll = float(file_system_poll_wait_seconds)
        self._max_retries = max(0, int(max_num_load_retries))
        self._retry_interval = max(0, load_retry_interval_micros) / 1e6
        self._load_pool = ThreadPoolExecutor(num_load_threads, "model-load") if num_load_threads > 0 else None
        self._unload_pool = (ThreadPoolExecutor(num_unload_threads, "model-unload")
                             if num_unload_threads > 0 else None)
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._settings: dict[str, ModelSettings] = {m.name: m for m in models}
        self._versions: dict[str, dict[int, Version]] = {}  # every version ever seen, per model
        # One lock for every change; `_cond` waits on it. Requests do not take it (see _checkout).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._routes: dict[str, Routes] = {}
        # Labels in force, and those of a config still waiting for their model's versions to load.
        self._labels: dict[str, dict[str, int]] = {}
        self._pending_labels: dict[str, dict[str, int]] = {m.name: dict(m.labels) for m in models}
        self._apply_pending_labels()
        self._publish()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._passes_started = self._passes_done = 0
        self._scan_requested = True
        self._last_scan = 0.0
        self._threads: list[threading.Thread] = []
        self.config_listeners: list[Callable] = []   # f(models) after every config applied (request_log)

    # ------------------------------------------------------------------ control

    def start(self) -> "ModelManager":
        self._spawn(self._run, "model-manager")
        return self

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop polling, wait (bounded) for requests in flight, unload every version, join threads."""
        self._stopping.set()
        self._wake.set()
        for t in self._threads:
            t.join()
        deadline = time.monotonic() + drain_timeout
        with self._cond:
            while any(v.refs for v in self._all()) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            loaded = [v for v in self._all() if v.servable is not None]
            for v in loaded:
                self._set(v, UNLOADING)
        self._unload_all(loaded)
        for pool in (self._load_pool, self._unload_pool):
            if pool is not None:
                pool.shutdown(wait=True)

    def wait_until_settled(self, timeout: float | None = None) -> bool:
        """Block until a full pass that began after this call has finished: the load attempts for
        everything on disk (when polling) and in the config at call time are over. False on timeout."""
        with self._cond:
            target = self._passes_started + 1
            if self._poll > 0:
                self._scan_requested = True
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._passes_done >= target or self._stopping.is_set(),
                                       timeout)

    def reload_config(self, models: list[ModelSettings]) -> None:
        """Apply a new model list: added models load, removed ones unload, changed policies/labels apply."""
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ConfigError("Illegal to list a model multiple times in config list")
        with self._cond:
            self._settings = {m.name: m for m in models}
            self._update_labels(models)
            self._publish()
            self._scan_requested = True
        log.info("Model config applied: %s", ", ".join(names))
        for listener in self.config_listeners:
            listener(models)
        self._wake.set()

    def watch_config_file(self, path: str, poll_wait_seconds: float) -> None:
        """Re-read a --model_config_file every poll_wait_seconds; a bad file is logged and ignored."""
        last = _file_content(path)  # read now: a change made after this call is never missed

        def watch():
            nonlocal last
            while not self._stopping.wait(poll_wait_seconds):
                content = _file_content(path)
                if content == last:
                    continue
                last = content
                try:
                    self.reload_config(config_mod.read_config_file(path, check_paths=False))
                except ServingError as e:
                    log.error("Invalid model config file %s, keeping the running config: %s",
                              path, e.message)
        if poll_wait_seconds > 0:
            self._spawn(watch, "model-config-watcher")

    def _spawn(self, target, name):
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # ------------------------------------------------------------------ requests

    def acquire(self, name: str, version: int | None = None, label: str | None = None) -> "_Lease":
        """`with manager.acquire("m") as servable:` the servable stays loaded inside the block."""
        return _Lease(self, name, version, label)

    def _checkout(self, name, version, label) -> Version:
        """The version a request names, checked out; ServingError when there is none to serve.

        Lock-free: taking the manager's lock on check-out and again on release cost ~7 us a request
        in a worker between model runs (measured in-process; ~1.6 us in a tight loop of its own),
        against <1 us this way. The manager publishes `_routes` anew after every state change,
        with its lock held. A request appends itself to the version's holders, then checks that the
        version is still AVAILABLE; an unload sets UNLOADING first and only then looks at the
        holders. With the GIL, one of the two sees the other: either the request sees UNLOADING and
        lets go, or the unload sees the holder and waits for it (stop(), _reap()).
        """
        while True:
            routes = self._routes
            entry = routes.get(name)
            if label is not None:
                version = label_version(entry, label)   # raises when the model or label is unknown
                assert entry is not None
                v = entry.available.get(version)
                if v is None:
                    raise ServingError("UNAVAILABLE", f"Version label \"{label}\" of model {name} "
                                       f"refers to version {version}, which is not available yet")
            elif version is None:
                v = entry.latest if entry is not None else None
                if v is None:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
            else:
                v = entry.available.get(version) if entry is not None else None
                if v is None:
                    raise ServingError("NOT_FOUND",
                                       f"Servable not found for request: Specific({name}, {version})")
            v.holders.append(None)
            if v.state == AVAILABLE:
                return v
            # An unload began after `routes` was read: let go, and look again once the manager
            # has published what is AVAILABLE now (it does so before it lets go of its lock).
            self._release(v)
            if self._routes is routes:
                with self._lock:
                    pass

    def _release(self, v: Version) -> None:
        v.holders.pop()
        if v.state != AVAILABLE or self._stopping.is_set():
            with self._lock:
                self._cond.notify_all()  # stop() waits for requests in flight
                if v.state == UNLOADING:
                    self._wake.set()     # the manager thread unloads it now

    # ------------------------------------------------------------------ worker

    def _all(self):
        return [v for per_model in self._versions.values() for v in per_model.values()]

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._passes_started += 1
                scan = self._scan_requested or (self._poll > 0 and
                                                time.monotonic() - self._last_scan >= self._poll)
                self._scan_requested = False
            try:
                self._pass(scan)
            except Exception:  # never let the worker die; the next pass retries
                log.exception("Model manager pass failed")
            with self._cond:
                self._passes_done += 1
                self._cond.notify_all()
            self._wake.wait(self._poll if self._poll > 0 else None)
            self._wake.clear()

    def _pass(self, scan: bool) -> None:
        if scan:
            self._last_scan = time.monotonic()
            with self._cond:
                settings = dict(self._settings)
            if self._load_pool is None:
                for model in settings.values():
                    if self._stopping.is_set():
                        return
                    try:
                        self._sync_model(model)
                    except Exception:  # one model's trouble must not stop the others
                        log.exception("Scanning model %s failed", model.name)
            else:
                self._sync_models_in_pool(list(settings.values()))
            with self._cond:  # models dropped from the config: unload everything they have
                gone = [v for n, vs in self._versions.items() if n not in self._settings
                        for v in vs.values() if v.state == AVAILABLE]
                for v in gone:
                    self._set(v, UNLOADING)
        self._reap()

    def _sync_model(self, model: ModelSettings) -> None:
        wanted, to_load = self._plan(model)
        for v, fp in to_load:
            if self._stopping.is_set():
                return
            self._load(v, fp)
        self._retire(model, wanted)

    def _sync_models_in_pool(self, models: list[ModelSettings]) -> None:
        """--num_load_threads: every model's new versions load at once, that many at a time."""
        plans = []
        for model in models:
            try:
                plans.append((model, *self._plan(model)))
            except Exception:
                log.exception("Scanning model %s failed", model.name)
        def load(v, fp):
            if not self._stopping.is_set():     # a load still queued when the server stops never starts
                self._load(v, fp)

        pool = self._load_pool
        assert pool is not None   # called with --num_load_threads > 0 only
        loads = [pool.submit(load, v, fp) for _, _, to_load in plans for v, fp in to_load]
        for future in loads:
            future.result()
        for model, wanted, _ in plans:
            if not self._stopping.is_set():
                self._retire(model, wanted)

    def _plan(self, model: ModelSettings) -> tuple[set[int] | None, list]:
        """The versions the policy wants, and those of them to load now (newest first); (None, [])
        when the base path cannot be listed (deleted, unreadable, not a folder): what is served stays,
        as when TF Serving's file system poll fails."""
        on_disk = discover_versions(model.name, model.base_path)
        if on_disk is None:
            return None, []
        wanted = model.select(set(on_disk))
        with self._cond:
            known = self._versions.setdefault(model.name, {})
            to_load = []
            for n in sorted(wanted, reverse=True):  # newest first: it is the one requests want
                v = known.get(n)
                if v is not None and v.state in (AVAILABLE, LOADING):
                    continue
                if v is not None and v.state == UNLOADING:
                    continue  # wait until it is gone, then load it afresh
                fp = fingerprint(on_disk[n])
                if v is not None and v.error is not None and v.fingerprint == fp:
                    continue  # failed before, files unchanged: do not retry
                if v is None or v.state == END:
                    v = known[n] = Version(model.name, n, on_disk[n])
                    self._set(v, START)
                to_load.append((v, fp))
        return wanted, to_load

    def _retire(self, model: ModelSettings, wanted: set[int] | None) -> None:
        """Unload the versions the policy no longer wants, once a wanted one is AVAILABLE."""
        if wanted is None:  # the base path could not be listed: nothing is known to be unwanted
            return
        with self._cond:
            known = self._versions.setdefault(model.name, {})
            if any(known[n].state == AVAILABLE for n in wanted if n in known) or not wanted:
                for n, v in known.items():
                    if n not in wanted and v.state == AVAILABLE:
                        self._set(v, UNLOADING)

    def _load(self, v: Version, fp: tuple) -> None:
        with self._cond:
            v.fingerprint = fp
            self._set(v, LOADING)
        log.info("Loading servable version %s %d from %s", v.name, v.version, v.path)
        retries = 0
        while True:
            servable, error = self._load_once(v)
            if error is None or retries >= self._max_retries or self._stopping.is_set():
                break
            retries += 1
            log.warning("Loading servable version %s %d failed: %s: %s; retry %d of %d in %g s",
                        v.name, v.version, error.code, error.message, retries, self._max_retries,
                        self._retry_interval)
            if self._stopping.wait(self._retry_interval):
                break
        with self._cond:
            if error is None:
                v.servable = servable
                self._set(v, AVAILABLE)
            else:
                v.error = error
                self._set(v, END)
        if error is None:
            log.info("Successfully loaded servable version %s %d from %s", v.name, v.version, v.path)
        else:
            log.error("Loading servable version %s %d from %s failed: %s: %s",
                      v.name, v.version, v.path, error.code, error.message)

    def _load_once(self, v: Version):
        """One load attempt (load + warm-up): (servable, None) or (None, ServingError)."""
        servable, error = None, None
        try:
            servable = self._loader(v.name, v.version, v.path)
            self._warmup(servable)
        except ServingError as e:
            error = e
        except Exception as e:  # a loader bug or an unexpected TF error: report it, keep serving
            error = ServingError("UNKNOWN", f"{type(e).__name__}: {e}")
        if error is not None and servable is not None:
            _safe_unload(servable)
            servable = None
        return servable, error

    def _reap(self) -> None:
        """Unload the UNLOADING versions that no request holds any more."""
        with self._cond:
            idle = [v for v in self._all() if v.state == UNLOADING and v.refs == 0]
        self._unload_all(idle)

    def _unload_all(self, versions: list) -> None:
        if self._unload_pool is None or len(versions) < 2:
            for v in versions:
                self._unload(v)
            return
        for future in [self._unload_pool.submit(self._unload, v) for v in versions]:
            future.result()

    def _unload(self, v: Version) -> None:
        if v.servable is not None:
            _safe_unload(v.servable)
        with self._cond:
            v.servable = None
            self._set(v, END)
        log.info("Unloaded servable version %s %d", v.name, v.version)

    def _set(self, v: Version, state: int) -> None:
        """Change a state (caller holds the lock), publish what requests may use, tell the listener."""
        v.state = state
        if state in (START, LOADING):
            v.error = None
        if state == AVAILABLE and self._pending_labels.get(v.name):
            self._apply_pending_labels()
        self._publish()
        if self._on_state is not None:
            try:
                self._on_state(v.name, v.version, State.State.Name(state), v.error)
            except Exception:
                log.exception("on_state listener failed")


def _safe_unload(servable) -> None:
    try:
        servable.unload()
    except Exception:
        log.exception("Unloading a servable failed")


def _file_content(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
