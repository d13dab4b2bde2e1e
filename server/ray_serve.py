"""Serve TF Serving's REST API from Ray Serve replicas, on a running Ray cluster.

    python -m server.ray_serve --ray_address=HOST:6379 --rest_api_port=8000 \\
        --model_name=MLP --model_base_path=/models/mlp --num_replicas=2

Every flag of `python -m server` means the same here; the ones below are Ray's. Each replica is one
worker of this server (model manager + core + the WSGI app), so replicas load the models from the
same base path or config file, poll it for new versions and answer with the same bytes as the single
server. Ray Serve's HTTP proxy listens on --rest_api_host:--rest_api_port (the host 127.0.0.1 unless
given) and spreads requests over the replicas; Ray places, restarts and autoscales them
(--autoscaling_config takes Ray Serve's own settings as JSON). The command deploys, waits until every
replica is running and exits: the application lives on the cluster until `serve shutdown` or `--delete`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from ray import serve

log = logging.getLogger("server.ray_serve")

DEPLOYMENT = "TFServing"
# Which replica answered, and on which Ray node: two headers more than the single server sends,
# the status and body are the same.
REPLICA_HEADER = "x-serve-replica"
NODE_HEADER = "x-ray-node"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server.ray_serve",
        description="Deploy this server on a running Ray cluster with Ray Serve. Takes every flag of "
                    "`python -m server` (--model_name/--model_base_path or --model_config_file, ...), "
                    "plus the Ray flags below. --rest_api_host/--rest_api_port are where Ray Serve's "
                    "HTTP proxy listens.",
        epilog="Example: python -m server.ray_serve --ray_address=127.0.0.1:6379 --rest_api_host=127.0.0.1 "
               "--rest_api_port=8000 --model_name=MLP --model_base_path=/abs/path --num_replicas=2",
    )
    g = p.add_argument_group("Ray Serve")
    g.add_argument("--ray_address", default=os.environ.get("RAY_ADDRESS", "auto"), metavar="ADDR",
                   help="The Ray cluster's address, HOST:PORT of its head (default: $RAY_ADDRESS or 'auto', "
                        "the cluster started on this machine with `ray start`).")
    g.add_argument("--app_name", default="tf_serving", metavar="NAME",
                   help="Name of the Serve application (default tf_serving).")
    g.add_argument("--num_replicas", type=int, default=1, metavar="N",
                   help="Fixed number of replicas (default 1; ignored with --autoscaling_config).")
    g.add_argument("--autoscaling_config", type=json.loads, default=None, metavar="JSON",
                   help="Ray Serve's autoscaling settings as JSON, e.g. '{\"min_replicas\": 1, "
                        "\"max_replicas\": 4, \"target_ongoing_requests\": 2}'.")
    g.add_argument("--max_ongoing_requests", type=int, default=8, metavar="N",
                   help="Requests one replica takes at once before the proxy queues them (default 8).")
    g.add_argument("--num_cpus_per_replica", type=float, default=1.0, metavar="N",
                   help="CPUs Ray reserves for each replica (default 1).")
    g.add_argument("--proxy_location", default="EveryNode", choices=["EveryNode", "HeadOnly"],
                   help="Run Ray Serve's HTTP proxy on every node (default) or on the head node only.")
    g.add_argument("--upload_code", type=_bool, default=True, metavar="BOOL",
                   help="Ship this `server` package to the cluster with the application (default true); false "
                        "when every node already has it installed (e.g. in the container image).")
    g.add_argument("--runtime_env", type=json.loads, default=None, metavar="JSON",
                   help="More of Ray's runtime_env for the replicas, as JSON (e.g. '{\"env_vars\": {...}}'); "
                        "env_vars are added to this command's, other keys replace its own.")
    g.add_argument("--wait_timeout_s", type=float, default=300.0, metavar="S",
                   help="How long to wait for every replica to be running (default 300).")
    g.add_argument("--delete", action="store_true",
                   help="Delete the application --app_name from the cluster and exit.")
    return p


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# ---------------------------------------------------------------------------------------- replica side

def replica_options(server_argv: list[str]):
    """The Options of one replica: the server's flags, with the gRPC front end off (Ray Serve's HTTP
    proxy is the only listener; replicas bind nothing of their own)."""
    from . import cli
    return cli.build_options(server_argv).replace(port=0, grpc_socket_path="")


def start_worker(server_argv: list[str]):
    """One worker of this server from its command line: (the WSGI app, a stop function, threads).

    The same start-up as a `python -m server` worker process: flags checked, files read, models
    loaded (the first load pass over, as TF Serving waits for it before it opens its ports).
    """
    from . import xla
    from .logsetup import configure_logging
    from .worker import Worker

    options = replica_options(server_argv)
    configure_logging(options.log_level)
    xla.configure(options)   # as tensorflow_model_server's main(), before any model loads
    worker = Worker(options).start()    # returns once the first load pass is over
    return worker.app, worker.stop, options.rest_api_num_threads


def replica_header_app(app, replica_id: str, node_id: str):
    """An ASGI app that adds `x-serve-replica: <id>` and `x-ray-node: <id>` to every answer of `app`."""
    extra = [(REPLICA_HEADER.encode(), replica_id.encode()), (NODE_HEADER.encode(), node_id.encode())]

    async def with_header(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        return await app(scope, receive, send_with_header)

    return with_header


@serve.deployment
@serve.ingress()
class TFServing:
    """One replica: a worker of this server behind Ray Serve's proxy (WSGI bridged to ASGI by a2wsgi)."""

    def __init__(self, server_argv: list[str]):
        self._wsgi_app, self._stop, self._threads = start_worker(server_argv)

    def __serve_build_asgi_app__(self):
        import ray
        from a2wsgi import WSGIMiddleware

        replica = serve.get_replica_context().replica_id.unique_id
        node = ray.get_runtime_context().get_node_id()
        # As many WSGI threads as the single server's --rest_api_num_threads.
        return replica_header_app(WSGIMiddleware(self._wsgi_app, workers=self._threads), replica, node)

    def __del__(self):  # Serve calls it when it stops the replica: unload the models, join the threads
        stop, self._stop = getattr(self, "_stop", None), None
        if stop is not None:
            stop()


# ---------------------------------------------------------------------------------------- driver side

def deployment_options(opts: argparse.Namespace) -> dict:
    """Ray Serve's options for the deployment, from the Ray flags."""
    options = {
        "name": DEPLOYMENT,
        "max_ongoing_requests": opts.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": opts.num_cpus_per_replica},
        # A replica loads TensorFlow and its models before it is healthy.
        "health_check_period_s": 5,
        "health_check_timeout_s": 30,
        "graceful_shutdown_timeout_s": 20,
    }
    if opts.autoscaling_config is not None:
        options["autoscaling_config"] = opts.autoscaling_config
    else:
        options["num_replicas"] = opts.num_replicas
    return options


def build_app(opts: argparse.Namespace, server_argv: list[str]):
    deployment: Any = TFServing   # a Ray Serve Deployment (made by the decorator)
    return deployment.options(**deployment_options(opts)).bind(server_argv)


def runtime_env(opts: argparse.Namespace) -> dict:
    env: dict[str, Any] = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}}
    if opts.upload_code:   # this package's folder
        env["py_modules"] = [os.path.dirname(os.path.abspath(__file__))]
    extra = dict(opts.runtime_env or {})
    env["env_vars"].update(extra.pop("env_vars", {}))
    env.update(extra)
    return env


def check_server_flags(server_argv: list[str]):
    """The same checks as `python -m server` before anything is deployed; exits on a bad flag or file.
    Returns the replicas' Options."""
    from .config import ConfigError

    try:
        options = replica_options(server_argv)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc.message}") from None
    if not options.rest_enabled:
        raise SystemExit("error: --rest_api_port is required: Ray Serve's HTTP proxy listens there")
    return options


def wait_running(app_name: str, timeout_s: float) -> dict:
    """Wait until the application is RUNNING; its status (replicas by state) as a dict."""
    deadline = time.monotonic() + timeout_s
    while True:
        app = serve.status().applications.get(app_name)
        state = app.status if app is not None else "NOT_STARTED"
        if state == "RUNNING":
            return app_summary(app_name)
        if state in ("DEPLOY_FAILED", "UNHEALTHY") or time.monotonic() > deadline:
            message = app.message if app is not None else ""
            raise SystemExit(f"error: application {app_name} is {state} after "
                             f"{timeout_s - max(0.0, deadline - time.monotonic()):.0f} s: {message}")
        time.sleep(0.5)


def app_summary(app_name: str) -> dict:
    app = serve.status().applications[app_name]
    deployment = app.deployments[DEPLOYMENT]
    return {"application": app_name, "status": str(app.status),
            "replicas": {str(k): v for k, v in deployment.replica_states.items()}}


def proxy_http_options(options) -> dict:
    """Where Ray Serve's HTTP proxies listen: --rest_api_host:--rest_api_port on every node that runs one.
    Without --rest_api_host, 127.0.0.1 (not TF Serving's 0.0.0.0): the proxies run on every node of a
    cluster whose other ports Ray itself leaves open, so listening on a node's other interfaces is
    something to ask for (--rest_api_host=0.0.0.0), never a default."""
    host = options.rest_api_host if "rest_api_host" in options.given_flags else "127.0.0.1"
    return {"host": host, "port": options.rest_api_port}


def main(argv: list[str] | None = None) -> int:
    import ray

    argv = sys.argv[1:] if argv is None else list(argv)
    opts, server_argv = build_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if opts.delete:
        if not ray.is_initialized():
            ray.init(address=opts.ray_address, logging_level=logging.WARNING)
        serve.delete(opts.app_name)
        print(f"deleted application {opts.app_name}")
        return 0
    options = check_server_flags(server_argv)
    if options.given_flags & {"port", "grpc_socket_path"}:
        log.warning("--port/--grpc_socket_path have no effect here: through Ray Serve this server speaks REST only")
    if not ray.is_initialized():  # else: called from a driver that is already connected
        ray.init(address=opts.ray_address, runtime_env=runtime_env(opts), logging_level=logging.WARNING)
    serve.start(http_options=proxy_http_options(options), proxy_location=opts.proxy_location)
    serve.run(build_app(opts, server_argv), name=opts.app_name, route_prefix="/", blocking=False)
    summary = wait_running(opts.app_name, opts.wait_timeout_s)
    print(json.dumps(summary))
    print(f"REST API on http://{proxy_http_options(options)['host']}:{options.rest_api_port}/v1/models/... "
          f"({sum(summary['replicas'].values())} replica(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
