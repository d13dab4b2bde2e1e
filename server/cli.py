"""The command line: `python -m server` takes tensorflow_model_server's flags.

Everything that can be checked before a model loads is checked here, in the parent process,
so that a bad flag, a missing base path or a port in use exits at once with one clear sentence.
The HTTP server is granian (HTTP in Rust, the WSGI app on a pool of threads per worker); each worker
process is started fresh ("spawn") and loads its own copy of the models.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from . import config as config_mod

log = logging.getLogger("server")

VERSION = "0.1.0"

# tensorflow_model_server flags this server does not implement yet. Giving one is an error that
# names it: never silently ignored.
UNSUPPORTED_FLAGS = {
    "port": "gRPC is not served yet (this server speaks REST only); drop --port and use --rest_api_port",
    "grpc_socket_path": "gRPC is not served yet",
    "grpc_channel_arguments": "gRPC is not served yet",
    "grpc_max_threads": "gRPC is not served yet",
    "enable_grpc_healthcheck_service": "gRPC is not served yet",
    "use_alts_credentials": "gRPC is not served yet",
    "ssl_config_file": "TLS is not supported; put a TLS-terminating proxy in front",
    "platform_config_file": "only the tensorflow platform is served",
    "allow_version_labels_for_unavailable_models": "labels from the config file already apply "
                                                   "as soon as their version is available",
    "num_load_threads": "not supported yet",
    "num_unload_threads": "not supported yet",
    "max_num_load_retries": "not supported yet (failed versions are retried when their files change)",
    "load_retry_interval_micros": "not supported yet",
    "flush_filesystem_caches": "not supported yet",
    "tensorflow_session_parallelism": "not supported yet",
    "tensorflow_session_config_file": "not supported yet",
    "per_process_gpu_memory_fraction": "not supported yet",
    "remove_unused_fields_from_bundle_metagraph": "not supported yet",
    "prefer_tflite_model": "TensorFlow Lite models are not served",
    "num_tflite_pools": "TensorFlow Lite models are not served",
    "num_tflite_interpreters_per_pool": "TensorFlow Lite models are not served",
    "enable_signature_method_name_check": "not supported yet",
    "xla_cpu_compilation_enabled": "not supported yet",
    "enable_profiler": "not supported yet",
    "thread_pool_factory_config_file": "not supported yet",
    "mixed_precision": "not supported yet",
    "skip_initialize_tpu": "TPUs are not supported",
}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="A Flask server that speaks TensorFlow Serving's REST API, with the flags of "
                    "tensorflow_model_server.",
        epilog="Example: python -m server --rest_api_port=8501 --model_name=MLP "
               "--model_base_path=/abs/path/saved_with_signature",
    )
    g = p.add_argument_group("tensorflow_model_server flags")
    g.add_argument("--rest_api_port", type=_port, metavar="PORT",
                   help="Port for the HTTP/REST API (required: this server speaks REST only).")
    g.add_argument("--rest_api_num_threads", type=_positive_int, default=None, metavar="N",
                   help="Threads per worker that run requests (default 1; with batching, 4 per CPU core so "
                        "that concurrent requests can wait together for a batch). Python runs one thread at a "
                        "time per process: use --workers for more cores, and more threads only for models "
                        "whose runs take long (TensorFlow releases the GIL while it runs).")
    g.add_argument("--rest_api_timeout_in_ms", type=_non_negative_int, default=30000, metavar="MS",
                   help="Timeout for one REST request's model run in milliseconds; 0 = none (default 30000). "
                        "A run past it answers 504 DEADLINE_EXCEEDED.")
    g.add_argument("--model_name", default="default", metavar="NAME",
                   help="Name of the model, as used in the URL /v1/models/NAME (default 'default').")
    g.add_argument("--model_base_path", default="", metavar="PATH",
                   help="Absolute path of the model folder: numbered sub-folders are versions, the highest is served.")
    g.add_argument("--model_config_file", default="", metavar="FILE",
                   help="A ModelServerConfig in protobuf text format (several models, version policies, labels). "
                        "Replaces --model_name/--model_base_path.")
    g.add_argument("--model_config_file_poll_wait_seconds", type=_non_negative_int, default=0, metavar="S",
                   help="Re-read --model_config_file every S seconds and apply changes; 0 = read once (default).")
    g.add_argument("--file_system_poll_wait_seconds", type=_non_negative_int, default=1, metavar="S",
                   help="Look for new or removed versions every S seconds; 0 = load once (default 1).")
    g.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False, metavar="BOOL",
                   help="Merge concurrent predict requests into one model run (default false).")
    g.add_argument("--batching_parameters_file", default="", metavar="FILE",
                   help="BatchingParameters in protobuf text format (max_batch_size, batch_timeout_micros, "
                        "max_enqueued_batches, num_batch_threads, allowed_batch_sizes). Implies --enable_batching.")
    g.add_argument("--monitoring_config_file", default="", metavar="FILE",
                   help="A MonitoringConfig in protobuf text format; with prometheus_config { enable: true } "
                        "Prometheus metrics are served on the REST port at prometheus_config.path "
                        "(default /monitoring/prometheus/metrics), added up over all workers.")
    g.add_argument("--rest_api_enable_cors_support", type=_bool, nargs="?", const=True, default=False,
                   metavar="BOOL",
                   help="Add TF Serving's CORS headers (Access-Control-Allow-Origin: *) to every REST answer, so "
                        "that a web page from another origin can call the API (default false).")
    g.add_argument("--enable_model_warmup", type=_bool, nargs="?", const=True, default=True, metavar="BOOL",
                   help="Replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE (default true).")
    g.add_argument("--saved_model_tags", default="serve", metavar="TAGS",
                   help="Comma-separated tags of the MetaGraph to load (default 'serve').")
    g.add_argument("--tensorflow_intra_op_parallelism", type=_non_negative_int, default=0, metavar="N",
                   help="Threads TensorFlow uses inside one op (default 0: one per core). "
                        "1 often serves small models fastest, with parallelism coming from requests.")
    g.add_argument("--tensorflow_inter_op_parallelism", type=_int, default=0, metavar="N",
                   help="Threads TensorFlow uses to run independent ops at once (default 0: one per core). "
                        "Negative: every op runs in the request's own thread, with no hand-off to a pool, "
                        "which serves small models fastest.")
    g.add_argument("--version", action="version", version=f"TensorFlow Serving REST API (Flask) {VERSION}",
                   help="Print the version and exit.")
    x = p.add_argument_group("flags of this server (not in tensorflow_model_server)")
    x.add_argument("--rest_api_host", default="0.0.0.0", metavar="ADDR",
                   help="Address to listen on (default 0.0.0.0, as TF Serving; 127.0.0.1 for this machine only).")
    x.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="Worker processes, each with its own copy of the models (default 1).")
    x.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"],
                   help="Log level (default info).")
    u = p.add_argument_group("tensorflow_model_server flags not supported yet (refused by name)")
    for flag in sorted(UNSUPPORTED_FLAGS):
        u.add_argument(f"--{flag}", dest=f"unsupported_{flag}", default=None, metavar="...",
                       help=UNSUPPORTED_FLAGS[flag])
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags; exits with status 2 and one clear sentence on any problem."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in sorted(UNSUPPORTED_FLAGS):
        if getattr(args, f"unsupported_{flag}") is not None:
            parser.error(f"--{flag} is a tensorflow_model_server flag this server does not support: "
                         f"{UNSUPPORTED_FLAGS[flag]}")
    if args.rest_api_port is None:
        parser.error("--rest_api_port is required (this server speaks the REST API only), "
                     "e.g. --rest_api_port=8501")
    if args.model_config_file and args.model_base_path:
        parser.error("give either --model_config_file or --model_name/--model_base_path, not both")
    if not args.model_config_file and not args.model_base_path:
        parser.error("give --model_base_path (with --model_name) or --model_config_file")
    if args.batching_parameters_file:
        args.enable_batching = True
    if args.rest_api_num_threads is None:
        # Measured on 2 cores, one worker, 1-image MNIST requests at 32 connections: 1 thread 3,939 req/s,
        # 2 threads 3,220 (earlier code: 1 thread 1,841, 2: 1,675, 4: 1,436, 8: ~1,420): Python runs one
        # thread at a time, so more threads only contend; more cores want more workers. Batching needs
        # requests waiting together for a batch: several threads per core.
        args.rest_api_num_threads = 4 * (os.cpu_count() or 1) if args.enable_batching else 1
    args.saved_model_tags = tuple(t for t in args.saved_model_tags.split(",") if t)
    return args


def load_settings(args: argparse.Namespace, check_paths: bool = True) -> list:
    """The models to serve; raises config.ConfigError."""
    if args.model_config_file:
        return config_mod.read_config_file(args.model_config_file, check_paths=check_paths)
    return config_mod.single_model(args.model_name, args.model_base_path, check_paths=check_paths)


def prepare(args: argparse.Namespace) -> None:
    """Read the files the flags name (batching, monitoring) into `args`; raises config.ConfigError."""
    args.batching_parameters = None
    if args.enable_batching:
        from . import batching
        args.batching_parameters = batching.read_parameters(args.batching_parameters_file or None)
    args.prometheus = None
    if args.monitoring_config_file:
        from . import monitoring
        prometheus = monitoring.read_config_file(args.monitoring_config_file)
        args.prometheus = prometheus if prometheus.enable else None


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SystemExit(f"error: port {port} is already in use on {host}: stop the other server "
                                 f"or choose another --rest_api_port") from None
            raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}") from None


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # TensorFlow's own chatter stays out of the server log unless it is an error.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings(args)
        prepare(args)
    except config_mod.ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    check_port_free(args.rest_api_host, args.rest_api_port)
    from .wsgi import serve
    return serve(args, settings, argv)
