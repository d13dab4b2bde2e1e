"""Process wiring: one worker's app (manager + API + Flask) and the gunicorn server around it."""
from __future__ import annotations

import functools
import gc
import logging
import os

log = logging.getLogger("server")


class Worker:
    """Everything one worker process serves with: started after the fork, stopped at exit."""

    def __init__(self, args, settings):
        from .app import create_app
        from .handlers import ServingAPI
        from .lifecycle import ModelManager
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
        self.api = ServingAPI(self.manager, batcher_for=self.batchers.batcher_for if self.batchers else None)
        self.app = create_app(self.api, metrics=self.metrics,
                              metrics_path=prometheus.path if prometheus is not None else None)
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


def serve(args, settings) -> int:
    """Run gunicorn with threaded workers until SIGINT/SIGTERM."""
    from gunicorn.app.base import BaseApplication

    holder = {}

    class Application(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", [f"{args.rest_api_host}:{args.rest_api_port}"])
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", args.rest_api_num_threads)
            self.cfg.set("timeout", 120)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("keepalive", 75)
            self.cfg.set("backlog", 2048)
            self.cfg.set("accesslog", None)
            self.cfg.set("errorlog", "-")
            self.cfg.set("loglevel", args.log_level)
            self.cfg.set("proc_name", "tf-serving-flask")
            # gunicorn's runtime-control socket sits at one fixed path per user: two servers on one
            # machine would fight over it, and this server is managed by its flags and signals.
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("worker_exit", _worker_exit)
            if metrics_dir is not None:
                self.cfg.set("child_exit", _child_exit)

        def load(self):
            # Runs in each worker after the fork: TensorFlow is imported and models load here.
            worker = Worker(args, settings)
            holder["worker"] = worker
            return worker.app

    def _worker_exit(server, worker):
        w = holder.get("worker")
        if w is not None:
            w.stop()

    def _child_exit(server, worker):
        # In the parent: the dead worker's live gauges stop counting; its counters stay in the sums.
        monitoring.mark_process_dead(worker.pid)

    metrics_dir = None
    if getattr(args, "prometheus", None) is not None:
        from . import monitoring
        metrics_dir = monitoring.enable_multiprocess()  # before the fork: every worker writes there
        log.info("Prometheus metrics on http://%s:%d%s (every worker's values in %s)", args.rest_api_host,
                 args.rest_api_port, args.prometheus.path, metrics_dir)
    parent = os.getpid()
    log.info("REST API on http://%s:%d/v1/models/... with %d worker(s) x %d threads",
             args.rest_api_host, args.rest_api_port, args.workers, args.rest_api_num_threads)
    try:
        Application().run()
    finally:
        # Workers leave run() through SystemExit too; only the parent removes the folder.
        if metrics_dir is not None and os.getpid() == parent:
            monitoring.cleanup_multiprocess(metrics_dir)
    return 0
