"""One worker process: the model manager, batching, monitoring, the API object and its front ends.

`Worker(options)` builds everything one process serves with; `start()` starts loading models and the
front ends, `stop()` stops them. `worker_rsgi_app()` is granian's factory: it builds and starts a Worker in
a fresh worker process from the Options its parent handed over, and returns the REST (WSGI) app.
"""
from __future__ import annotations

import functools
import gc
import logging
import os

from .options import Options

log = logging.getLogger("server")


def make_dataplane(manager, batchers, options: Options):
    """The transport-free core that every front end calls (dataplane.DataPlane)."""
    from .dataplane import DataPlane
    from .signatures import check_method_name
    return DataPlane(manager, batcher_for=batchers.batcher_for if batchers is not None else None,
                     check_method_name=check_method_name if options.enable_signature_method_name_check else None,
                     max_elements=options.max_request_elements,
                     queue_timeout_s=options.batching_queue_timeout_in_ms / 1000 or None)


def make_rest_app(dataplane, metrics, options: Options):
    """The REST front end's WSGI app over the core (granian serves it in each worker)."""
    from .rest.app import create_app
    from .rest.handlers import RestAPI
    return create_app(RestAPI(dataplane, timeout_ms=options.rest_api_timeout_in_ms), metrics=metrics,
                      metrics_path=options.prometheus.path if options.prometheus is not None else None,
                      cors=options.rest_api_enable_cors_support, max_body=options.rest_api_max_body_bytes)


def make_loader(options: Options):
    """`loader(name, version, path) -> servable` with the flags' session and model-format settings."""
    from .servable import load_servable
    return functools.partial(load_servable, options=options)


def make_warmup(options: Options, batchers=None):
    """`warmup(servable) -> number of records replayed` (0 when warm-up is off); with `batchers`
    (batching.BatcherPool), records run through the version's batchers, as its requests will."""
    if not options.enable_model_warmup:
        return lambda servable: 0
    from .warmup import run_warmup
    kwargs = {}
    if options.num_request_iterations_for_warmup > 0 or (
            options.platform is not None and options.platform.num_request_iterations_set):
        kwargs["num_request_iterations"] = options.num_request_iterations_for_warmup
    if batchers is not None:
        kwargs["batcher_for"] = batchers.batcher_for
    return functools.partial(run_warmup, **kwargs) if kwargs else run_warmup


# The gRPC front end: a module of the server.grpc package with a class GrpcServer(dataplane, options, metrics)
# whose start() serves on options.port / options.grpc_socket_path and whose stop() ends it.
GRPC_FRONT_END = "grpc.server"


def grpc_front_end_available() -> bool:
    """Whether this build has the gRPC front end (server/grpc/server.py)."""
    import importlib.util
    try:
        return importlib.util.find_spec(f"{__package__}.{GRPC_FRONT_END}") is not None
    except ModuleNotFoundError:      # no server.grpc package at all
        return False


def make_front_ends(worker: "Worker") -> list:
    """The front ends this worker starts itself besides REST (which granian serves with `worker.app`):
    objects with `start()` and `stop()`, made from `worker.dataplane` and `worker.options`."""
    front_ends = []
    if worker.options.grpc_enabled and grpc_front_end_available():
        import importlib
        module = importlib.import_module(f"{__package__}.{GRPC_FRONT_END}")
        front_ends.append(module.GrpcServer(worker.dataplane, worker.options, metrics=worker.metrics))
    return front_ends


class Worker:
    """Everything one worker process serves with: built and started in the worker, stopped at exit."""

    def __init__(self, options: Options):
        from .lifecycle import ModelManager

        self.options = options
        self.batchers = None
        if options.enable_batching:
            from .batching import BatcherPool
            self.batchers = BatcherPool(options.batching_parameters,
                                        per_model=options.enable_per_model_batching_parameters)
        loader = make_loader(options)
        if self.batchers is not None and self.batchers.per_model:
            loader = _with_version_batching(loader, self.batchers)
        warmup = make_warmup(options, self.batchers)
        self.metrics = None
        if options.prometheus is not None:
            from . import monitoring
            # Values go to the folder the parent made before the fork: every worker's add up.
            self.metrics = monitoring.Metrics(multiprocess_dir=monitoring.multiprocess_dir())
            loader = monitoring.timed_loader(self.metrics, loader)
            if options.enable_model_warmup:
                warmup = monitoring.timed_warmup(self.metrics, warmup)
        self.manager = ModelManager(
            list(options.models),
            file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
            loader=loader,
            warmup=warmup,
            on_state=self._on_state,
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_micros=options.load_retry_interval_micros,
            num_load_threads=options.num_load_threads,
            num_unload_threads=options.num_unload_threads,
            allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models,
        )
        self.dataplane = make_dataplane(self.manager, self.batchers, options)
        self.request_log = attach_request_log(self, options)
        self.app = make_rest_app(self.dataplane, self.metrics, options)
        if options.access_log:
            from . import access_log
            self.app = access_log.wrap_wsgi(self.app, access_log.install(options.access_log))
        self.front_ends = make_front_ends(self)

    def start(self) -> "Worker":
        """Load the models, then open the front ends. As TF Serving (ServerCore waits until the
        configured models are available before its servers start), a worker answers no request
        before the first load attempt of every version it serves is over: with several workers,
        one still loading never answers "Servable not found" while another already serves."""
        self.manager.start()
        log.debug("Loading the models before serving")
        self.manager.wait_until_settled()
        opts = self.options
        if opts.model_config_file and opts.model_config_file_poll_wait_seconds > 0:
            self.manager.watch_config_file(opts.model_config_file, opts.model_config_file_poll_wait_seconds)
        for front_end in self.front_ends:
            front_end.start()
        return self

    def _on_state(self, name, version, state, error):
        if self.metrics is not None:
            self.metrics.on_state(name, version, state)
        if state == "AVAILABLE":
            freeze_heap()
        elif state == "END" and self.batchers is not None:
            self.batchers.version_ended(name, version)

    def stop(self):
        for front_end in reversed(self.front_ends):
            front_end.stop()
        self.manager.stop()
        if self.batchers is not None:
            self.batchers.close()
        if self.request_log is not None:
            self.request_log.close()   # everything still queued is written before the process ends


def attach_request_log(worker: "Worker", options: Options):
    """The request log (request_log.RequestLog) of this worker's core, kept current with every config the
    model manager applies; None when no model of the configuration has a logging_config."""
    if not any(m.logging is not None for m in options.models) and not options.model_config_file:
        return None
    from .request_log import RequestLog
    request_log = RequestLog(options.models, saved_model_tags=options.saved_model_tags, metrics=worker.metrics)
    worker.dataplane.request_log = request_log
    worker.manager.config_listeners.append(request_log.update)
    return request_log


def _with_version_batching(loader, batchers):
    """A loader that reads the version's own batching parameters after the load; a bad file fails it."""
    def load(name, version, path):
        servable = loader(name, version, path)
        try:
            batchers.version_loaded(servable)
        except BaseException:
            servable.unload()
            raise
        return servable
    return load


def freeze_heap() -> None:
    """Keep the garbage collector off the objects that a loaded model leaves on the heap.

    A process with TensorFlow and a model loaded holds hundreds of thousands of long-lived objects;
    every full collection walks them all, and a JSON request body of 100 images creates enough lists
    to trigger several (measured: parsing one such body took 121 ms, 14 ms once frozen). After each
    load the survivors move to the permanent generation; unloaded models' garbage is collected first.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def start_worker_process() -> Worker:
    """The Worker of one worker process: Options from the parent, models loaded here.

    Workers are started with the "spawn" method on every platform, so each imports TensorFlow and
    loads its own copy of the models in a fresh interpreter; the parent hands over its Options
    (already checked, files already read) in a file only the server's user can read, whose path is
    in the environment (options.SETTINGS_FILE_ENV).
    """
    import atexit

    from . import xla
    from .logsetup import configure_logging
    from .options import SETTINGS_FILE_ENV
    options = Options.read_settings_file(os.environ[SETTINGS_FILE_ENV])
    configure_logging(options.log_level)
    xla.configure(options)   # as tensorflow_model_server's main(), before any model loads
    worker = Worker(options).start()
    atexit.register(worker.stop)
    if worker.metrics is not None:
        from . import monitoring
        # This worker's live gauges stop counting once it is gone; its counters stay in the sums.
        atexit.register(monitoring.mark_process_dead, os.getpid())
    return worker


def worker_app():
    """The WSGI app of one worker process (a WSGI server's factory)."""
    return start_worker_process().app


def worker_rsgi_app():
    """The REST app of one worker process under granian's RSGI interface (http_server.serve's factory):
    the WSGI app behind rest.rsgi.RsgiAdapter, which reads each body on the event loop and runs the app
    in --rest_api_num_threads threads once the body is in."""
    from .rest.rsgi import RsgiAdapter
    worker = start_worker_process()
    options = worker.options
    return RsgiAdapter(worker.app, threads=options.rest_api_num_threads,
                       body_timeout_s=options.rest_api_body_timeout_in_ms / 1000,
                       max_body=options.rest_api_max_body_bytes,
                       max_buffered=options.rest_api_max_buffered_bytes,
                       server_port=options.rest_api_port)


def serve_in_process(options: Options) -> int:
    """Without a REST API (--rest_api_port=0, as TF Serving): one Worker in this process serves the other
    front ends (gRPC) until SIGINT or SIGTERM."""
    import signal
    import threading

    from . import xla
    xla.configure(options)
    if options.workers > 1:
        log.warning("--workers=%d applies to the REST API only: without it one process serves", options.workers)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker = Worker(options).start()
    log.info("Serving without a REST API (--rest_api_port=0): %d front end(s)", len(worker.front_ends))
    try:
        stop.wait()
    finally:
        worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
