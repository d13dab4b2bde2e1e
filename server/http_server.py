"""The HTTP server: granian (HTTP in Rust) runs `--workers` processes, each serving worker.worker_app."""
from __future__ import annotations

import logging
import os

from .options import SETTINGS_FILE_ENV, Options, remove_settings_file

log = logging.getLogger("server")


def serve(options: Options) -> int:
    """Run granian until SIGINT/SIGTERM; every worker process builds its own Worker from `options`."""
    import multiprocessing

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    metrics_dir = None
    if options.prometheus is not None:
        from . import monitoring
        metrics_dir = monitoring.enable_multiprocess()  # before the workers start: every one writes there
        log.info("Prometheus metrics on http://%s:%d%s (every worker's values in %s)", options.rest_api_host,
                 options.rest_api_port, options.prometheus.path, metrics_dir)
    settings_file = options.write_settings_file()   # the workers read it; only its path is in the environment
    os.environ[SETTINGS_FILE_ENV] = settings_file
    multiprocessing.set_start_method("spawn", force=True)
    log.info("REST API on http://%s:%d/v1/models/... with %d worker(s) x %d threads",
             options.rest_api_host, options.rest_api_port, options.workers, options.rest_api_num_threads)
    server = Granian(
        f"{__package__}.worker:worker_app",   # this package's name, installed or from the repository
        factory=True,
        interface=Interfaces.WSGI,
        address=options.rest_api_host,
        port=options.rest_api_port,
        workers=options.workers,
        blocking_threads=options.rest_api_num_threads,
        backlog=2048,
        respawn_failed_workers=True,  # a worker killed (OOM, a crash in TensorFlow) is replaced; the others serve on
        http=HTTPModes.http1,  # TF Serving speaks HTTP/1.1 only
        websockets=False,
        log_level=options.log_level if options.log_level != "warning" else "warn",
    )
    try:
        server.serve()
    finally:
        remove_settings_file(settings_file)
        if metrics_dir is not None:
            monitoring.cleanup_multiprocess(metrics_dir)
    return 0
