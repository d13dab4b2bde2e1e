"""Process wiring: one worker's app (manager + API + Flask) and the HTTP server (granian) around it."""
from __future__ import annotations

import functools
import gc
import json
import logging
import os

log = logging.getLogger("server")


class Worker:
    """Everything one worker process serves with: started in the worker, stopped at exit."""

    def __init__(self, args, settings):
        from .dataplane import DataPlane
        from .lifecycle import ModelManager
        from .rest.app import create_app
        from .rest.handlers import RestAPI
        from .servable import load_servable

        self.batchers = None
        if args.enable_batching:
            from .batching import BatcherPool
            self.batchers = BatcherPool(args.batching_parameters)
        loader = functools.partial(load_servable, tags=args.saved_model_tags,
                                   run_timeout_ms=args.rest_api_timeout_in_ms,
                                   intra_op_threads=args.tensorflow_intra_op_parallelism,
                                   inter_op_threads=args.tensorflow_inter_op_parallelism)
        warmup = None if args.enable_model_warmup else (lambda servable: 0)
        prometheus = getattr(args, "prometheus", None)
        self.metrics = None
        if prometheus is not None:
            from . import monitoring
            from .warmup import run_warmup
            # Values go to the folder the parent made before the fork: every worker's add up.
            self.metrics = monitoring.Metrics(multiprocess_dir=monitoring.multiprocess_dir())
            loader = monitoring.timed_loader(self.metrics, loader)
            if warmup is None:
                warmup = monitoring.timed_warmup(self.metrics, run_warmup)
        self.manager = ModelManager(
            settings,
            file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
            loader=loader,
            warmup=warmup,
            on_state=self._on_state,
        )
        self.dataplane = DataPlane(self.manager, batcher_for=self.batchers.batcher_for if self.batchers else None)
        self.api = RestAPI(self.dataplane)
        self.app = create_app(self.api, metrics=self.metrics,
                              metrics_path=prometheus.path if prometheus is not None else None,
                              cors=args.rest_api_enable_cors_support)
        self.manager.start()
        if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
            self.manager.watch_config_file(args.model_config_file, args.model_config_file_poll_wait_seconds)

    def _on_state(self, name, version, state, error):
        if getattr(self, "metrics", None) is not None:
            self.metrics.on_state(name, version, state)
        if state == "AVAILABLE":
            freeze_heap()

    def stop(self):
        self.manager.stop()
        if self.batchers is not None:
            self.batchers.close()


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


ARGV_ENV = "TF_SERVING_FLASK_ARGV"


def worker_app():
    """The WSGI app of one worker process (granian's factory): flags from the parent, models loaded here.

    Workers are started with the "spawn" method on every platform, so each imports TensorFlow and
    loads its own copy of the models in a fresh interpreter; the parent passes its command line
    through the environment, already checked.
    """
    import atexit

    from . import cli
    args = cli.parse_args(json.loads(os.environ[ARGV_ENV]))
    cli.configure_logging(args.log_level)
    cli.prepare(args)
    worker = Worker(args, cli.load_settings(args, check_paths=False))
    atexit.register(worker.stop)
    if worker.metrics is not None:
        from . import monitoring
        # This worker's live gauges stop counting once it is gone; its counters stay in the sums.
        atexit.register(monitoring.mark_process_dead, os.getpid())
    return worker.app


def serve(args, settings, argv: list[str]) -> int:
    """Run granian (HTTP in Rust, the WSGI app in each worker's threads) until SIGINT/SIGTERM."""
    import multiprocessing

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    metrics_dir = None
    if getattr(args, "prometheus", None) is not None:
        from . import monitoring
        metrics_dir = monitoring.enable_multiprocess()  # before the workers start: every one writes there
        log.info("Prometheus metrics on http://%s:%d%s (every worker's values in %s)", args.rest_api_host,
                 args.rest_api_port, args.prometheus.path, metrics_dir)
    os.environ[ARGV_ENV] = json.dumps(argv)
    multiprocessing.set_start_method("spawn", force=True)
    log.info("REST API on http://%s:%d/v1/models/... with %d worker(s) x %d threads",
             args.rest_api_host, args.rest_api_port, args.workers, args.rest_api_num_threads)
    server = Granian(
        "server.wsgi:worker_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=args.rest_api_host,
        port=args.rest_api_port,
        workers=args.workers,
        blocking_threads=args.rest_api_num_threads,
        backlog=2048,
        http=HTTPModes.http1,  # TF Serving speaks HTTP/1.1 only
        websockets=False,
        log_level=args.log_level if args.log_level != "warning" else "warn",
    )
    try:
        server.serve()
    finally:
        if metrics_dir is not None:
            monitoring.cleanup_multiprocess(metrics_dir)
    return 0
