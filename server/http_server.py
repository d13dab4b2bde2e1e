"""The HTTP server: granian (HTTP in Rust, RSGI interface) runs `--workers` processes, each serving
worker.worker_rsgi_app (rest.rsgi around the Flask app: bodies read before a thread runs them)."""
from __future__ import annotations

import logging
import os

from .options import SETTINGS_FILE_ENV, Options, remove_settings_file

log = logging.getLogger("server")


def open_files_limit() -> int:
    """RLIMIT_NOFILE's soft limit, first raised to the hard one (idle clients may take that many files)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def serve(options: Options, interface: str = "rsgi") -> int:
    """Run granian until SIGINT/SIGTERM; every worker process builds its own Worker from `options`.

    `interface="wsgi"` runs the same app under granian's WSGI interface, the front end this server had
    before rest.rsgi, for bench.front_end_ab's comparison only: there a request takes a handler thread
    before its body has arrived, so one client that sends headers and waits holds the worker."""
    import multiprocessing

    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

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
    connections = open_files_limit()
    wsgi = interface == "wsgi"
    server = Granian(
        # this package's name, installed or from the repository
        f"{__package__}.worker:{'worker_app' if wsgi else 'worker_rsgi_app'}",
        factory=True,
        # RSGI: granian reads bodies on the worker's event loop; rest.rsgi runs the app in
        # --rest_api_num_threads threads once a body is in (a slow client holds no thread).
        interface=Interfaces.WSGI if wsgi else Interfaces.RSGI,
        **({"blocking_threads": options.rest_api_num_threads} if wsgi else {}),
        address=options.rest_api_host,
        port=options.rest_api_port,
        workers=options.workers,
        backlog=2048,
        # Connections a worker serves at once (granian's default, backlog // workers, stopped new
        # clients at 2,048 idle ones): as many as the open files allow, less some for models and logs.
        backpressure=max(64, connections - 256),
        http1_settings=HTTP1Settings(header_read_timeout=options.rest_api_idle_timeout_in_ms or 2**31 - 1),
        respawn_failed_workers=True,  # a worker killed (OOM, a crash in TensorFlow) is replaced; the others serve on
        http=HTTPModes.http1,  # TF Serving speaks HTTP/1.1 only
        websockets=False,
        log_level=LogLevels(options.log_level if options.log_level != "warning" else "warn"),
    )
    try:
        server.serve()
    finally:
        remove_settings_file(settings_file)
        if metrics_dir is not None:
            monitoring.cleanup_multiprocess(metrics_dir)
    return 0
