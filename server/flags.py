"""The command-line flags: every flag of TF Serving's `tensorflow_model_server` (model_servers/main.cc),
with its name, default and meaning there, plus a few of this server's own.

`build_parser()` is what `python -m server --help` prints. Each tensorflow_model_server flag's help
ends with "[default: X; tensorflow_model_server: Y]" (only "[default: X]" where the two agree), the
form docs/flags.rst is checked against. What each flag does here is in options.py and the modules
that read the Options; NOT_HONOURED lists the flags that are accepted but have no effect yet (the
CLI logs one warning line for each one given).
"""
from __future__ import annotations

import argparse
import os

VERSION = "0.1.0"
CPUS = os.cpu_count() or 1


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
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535 (0: off), got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0.0 to 1.0, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0.0 to 1.0, got {text!r}")
    return value


# tensorflow_model_server flags that are accepted and stored in Options but change nothing yet.
# Giving one logs one warning line that names it (cli.warn_not_honoured); never silently ignored.
NOT_HONOURED = {
    "skip_initialize_tpu": "no TPU support: nothing is initialized either way",
}

# The defaults of tensorflow_model_server (model_servers/server.h, Server::Options) where this
# server's differ; shown in --help and in docs/flags.rst.
TF_DEFAULTS = {
    "rest_api_num_threads": "4 x CPUs",
}


def _default(name: str, here: str) -> str:
    tf = TF_DEFAULTS.get(name)
    return f" [default: {here}; tensorflow_model_server: {tf}]" if tf is not None else f" [default: {here}]"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="A server that speaks TensorFlow Serving's REST API, with every flag of "
                    "tensorflow_model_server.",
        epilog="Example: python -m server --rest_api_port=8501 --model_name=MLP "
               "--model_base_path=/abs/path/saved_with_signature",
        allow_abbrev=False,   # as tensorflow_model_server: a flag is named in full
    )
    g = p.add_argument_group("tensorflow_model_server flags")

    def flag(name, help, here, type=str, default=None, metavar="VALUE", **kw):
        if type is str and default is None:
            default = ""
        if type is _bool:
            kw.setdefault("nargs", "?")
            kw.setdefault("const", True)
            metavar = "BOOL"
        g.add_argument(f"--{name}", type=type, default=default, metavar=metavar,
                       help=help + _default(name, here), **kw)

    # -- front ends
    flag("port", "TCP port for the gRPC API; 0 disables gRPC.", "8500", _port, 8500, "PORT")
    flag("grpc_socket_path", "If non-empty, also serve the gRPC API on this UNIX socket.", "''", metavar="PATH")
    flag("grpc_channel_arguments", "Comma-separated gRPC server channel arguments, e.g. "
         "grpc.max_connection_age_ms=2000 (numbers are passed as integers).", "''", metavar="ARGS")
    flag("grpc_max_threads", "Most threads of the gRPC server.", "4 x CPUs", _positive_int, 4 * CPUS, "N")
    flag("enable_grpc_healthcheck_service", "Serve the standard gRPC health-checking service.", "false",
         _bool, False)
    flag("ssl_config_file", "An SSLConfig in protobuf text format (server_key, server_cert, custom_ca, "
         "client_verify): serve gRPC over TLS.", "''", metavar="FILE")
    flag("use_alts_credentials", "Serve gRPC with Google ALTS credentials (only on Google Cloud, where gRPC "
         "makes them; not with --ssl_config_file).", "false", _bool, False)
    flag("enable_serialization_as_tensor_content", "Write gRPC predict responses' tensors as "
         "tensor_content bytes.", "false", _bool, False)
    flag("rest_api_port", "Port for the HTTP/REST API; 0: no REST API. Must differ from --port.",
         "0", _port, 0, "PORT")
    flag("rest_api_num_threads", "Threads per worker that run REST requests. Measured here: 1 serves "
         "fastest without batching (Python runs one thread at a time per process: use --workers for more "
         "cores), so the default is 1, or 4 per CPU with batching (requests must wait together for a "
         "batch).", "1 (4 x CPUs with batching)", _positive_int, None, "N")
    flag("rest_api_timeout_in_ms", "Timeout for one REST request in milliseconds; 0 = none. It bounds the "
         "model run and, with batching, the time the request waits for its batch (a request still queued then "
         "is never run). Past it: 504 DEADLINE_EXCEEDED.", "30000", _non_negative_int, 30000, "MS")
    flag("rest_api_enable_cors_support", "Add TF Serving's CORS headers (Access-Control-Allow-Origin: *) to "
         "every REST answer, so that a web page from another origin can call the API, and answer OPTIONS "
         "preflight requests as TF Serving does.", "false", _bool, False)
    # -- models
    flag("model_name", "Name of the model, as in /v1/models/NAME (ignored with --model_config_file).",
         "default", str, "default", "NAME")
    flag("model_base_path", "Absolute path of the model folder: numbered sub-folders are versions, the "
         "highest is served (ignored with --model_config_file).", "''", str, "", "PATH")
    flag("model_config_file", "A ModelServerConfig in protobuf text format (several models, version "
         "policies, labels). Replaces --model_name/--model_base_path.", "''", str, "", "FILE")
    flag("model_config_file_poll_wait_seconds", "Re-read --model_config_file every S seconds and apply "
         "changes; 0 = read once.", "0", _non_negative_int, 0, "S")
    flag("file_system_poll_wait_seconds", "Look for new or removed versions every S seconds; 0 = look "
         "once.", "1", _non_negative_int, 1, "S")
    flag("allow_version_labels_for_unavailable_models", "Allow a label in --model_config_file to point "
         "at a version that is not AVAILABLE yet (only a label not in use; a label already serving "
         "requests only moves to an AVAILABLE version).", "false", _bool, False)
    flag("saved_model_tags", "Comma-separated tags of the MetaGraph to load.", "serve", str, "serve", "TAGS")
    flag("platform_config_file", "A PlatformConfigMap in protobuf text format: its tensorflow platform's "
         "SessionBundleConfig (session config, batching, tags, warm-up, TensorFlow Lite, mixed precision) is used "
         "instead of the flags for them.", "''", str, "", "FILE")
    # -- loading and unloading
    flag("num_load_threads", "Threads that load versions; 0: one at a time in the manager's thread.",
         "0", _non_negative_int, 0, "N")
    flag("num_unload_threads", "Threads that unload versions; 0: one at a time in the manager's thread.",
         "0", _non_negative_int, 0, "N")
    flag("max_num_load_retries", "Times a failed load is retried before giving up; 0: tried once.",
         "5", _non_negative_int, 5, "N")
    flag("load_retry_interval_micros", "Microseconds between load retries; negative: no wait.",
         "60000000", _int, 60_000_000, "US")
    flag("flush_filesystem_caches", "Flush TensorFlow's file system caches after loads. This server "
         "reads models from local folders only, which have no such cache: no effect.", "true", _bool, True)
    flag("enable_model_warmup", "Replay assets.extra/tf_serving_warmup_requests before a version is "
         "AVAILABLE.", "true", _bool, True)
    flag("num_request_iterations_for_warmup", "Times each warm-up request is replayed; used when > 0.",
         "0", _non_negative_int, 0, "N")
    # -- batching
    flag("enable_batching", "Merge concurrent requests into one model run.", "false", _bool, False)
    flag("batching_parameters_file", "BatchingParameters in protobuf text format (max_batch_size, "
         "batch_timeout_micros, max_enqueued_batches, num_batch_threads, allowed_batch_sizes). Implies "
         "--enable_batching here (tensorflow_model_server refuses it without).", "''", str, "", "FILE")
    flag("enable_per_model_batching_parameters", "With --enable_batching, a version folder's "
         "batching_params.pbtxt replaces --batching_parameters_file for that version (the batch threads' "
         "number and name still come from the global file).", "false", _bool, False)
    # -- TensorFlow session
    flag("tensorflow_session_parallelism", "Threads of both TensorFlow pools, when neither of the next "
         "two flags is set; 0: auto.", "0", _non_negative_int, 0, "N")
    flag("tensorflow_intra_op_parallelism", "Threads TensorFlow uses inside one op; 0: one per core. "
         "1 often serves small models fastest, with parallelism coming from requests.", "0",
         _non_negative_int, 0, "N")
    flag("tensorflow_inter_op_parallelism", "Threads TensorFlow uses to run independent ops at once; 0: "
         "one per core. Negative: every op runs in the request's own thread, which serves small models "
         "fastest.", "0", _int, 0, "N")
    flag("tensorflow_session_config_file", "A TensorFlow ConfigProto in protobuf text format for every "
         "session; the parallelism flags override its thread counts.", "''", str, "", "FILE")
    flag("per_process_gpu_memory_fraction", "Fraction of GPU memory each process takes, 0.0 to 1.0; 0: "
         "TensorFlow chooses. No effect on a machine without a GPU.", "0", _fraction, 0.0, "F")
    flag("xla_cpu_compilation_enabled", "Enable XLA:CPU JIT compilation. Without it (or the next flag) "
         "XLA compilation is off: a model that asks for XLA (jit_compile) fails with INTERNAL \"XLA compilation "
         "disabled\".", "false", _bool, False)
    flag("xla_gpu_compilation_enabled", "Enable XLA:CPU and XLA:GPU JIT compilation (XLA:GPU has no "
         "effect on a machine without a GPU).", "false", _bool, False)
    flag("mixed_precision", "Mixed precision mode ('bfloat16' to run float32 models in bfloat16).", "''",
         metavar="MODE")
    flag("remove_unused_fields_from_bundle_metagraph", "Drop the MetaGraphDef fields serving does not "
         "use after load, to save memory.", "true", _bool, True)
    flag("enable_signature_method_name_check", "Check a SignatureDef's method_name against the API "
         "(predict/classify/regress) that calls it.", "false", _bool, False)
    flag("prefer_tflite_model", "Serve model.tflite from a version folder when there is one, instead of "
         "saved_model.pb.", "false", _bool, False)
    flag("num_tflite_pools", "TensorFlow Lite interpreter pools per model.", "CPUs", _positive_int, CPUS, "N")
    flag("num_tflite_interpreters_per_pool", "TensorFlow Lite interpreters in each pool.", "1",
         _positive_int, 1, "N")
    flag("thread_pool_factory_config_file", "A ThreadPoolFactoryConfig in protobuf text format, naming a "
         "registered ThreadPoolFactory. None is registered (none in tensorflow_model_server either): any file "
         "stops the server with the registry's error.", "''", str, "", "FILE")
    flag("enable_profiler", "Serve TensorFlow's profiler service on the gRPC port, for "
         "tf.profiler.experimental.client.trace('grpc://HOST:PORT', ...) and TensorBoard's profile capture.",
         "true", _bool, True)
    flag("skip_initialize_tpu", "Skip initializing a TPU at start. No effect on a machine without a "
         "TPU.", "false", _bool, False)
    flag("monitoring_config_file", "A MonitoringConfig in protobuf text format; with prometheus_config "
         "{ enable: true } Prometheus metrics are served on the REST port at prometheus_config.path "
         "(default /monitoring/prometheus/metrics), added up over all workers.", "''", str, "", "FILE")
    g.add_argument("--version", action="version", version=f"TensorFlow Serving REST API (Flask) {VERSION}",
                   help="Print the version and exit." + _default("version", "false"))

    x = p.add_argument_group("flags of this server (not in tensorflow_model_server)")
    x.add_argument("--rest_api_host", default="0.0.0.0", metavar="ADDR",
                   help="Address to listen on (default 0.0.0.0, as TF Serving; 127.0.0.1 for this machine only).")
    x.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="Worker processes, each with its own copy of the models (default 1).")
    x.add_argument("--rest_api_max_body_bytes", type=_non_negative_int, default=256 << 20, metavar="N",
                   help="Largest request body in bytes (default 268435456 = 256 MiB; 0 = no limit). A longer body "
                        "is answered 413 with a JSON error before it is read.")
    x.add_argument("--max_request_elements", type=_non_negative_int, default=1 << 26, metavar="N",
                   help="Most tensor elements one predict request may send, over all its inputs, and most examples "
                        "one classify/regress request may send (default 67108864; 0 = no limit). More is answered "
                        "400 INVALID_ARGUMENT before the model runs.")
    x.add_argument("--batching_queue_timeout_in_ms", type=_non_negative_int, default=0, metavar="MS",
                   help="With batching, the longest any request (REST or gRPC) may wait for its batch, in "
                        "milliseconds (default 0 = no bound of its own: a REST request is bounded by "
                        "--rest_api_timeout_in_ms, a gRPC request by its deadline if the client set one). A "
                        "request past it answers DEADLINE_EXCEEDED (REST 504) and is never run.")
    x.add_argument("--access_log", default="", metavar="PATH|-",
                   help="Write one JSON line per request (time, client address, REST or gRPC, API, model, the "
                        "version that answered, signature, status, latency, body sizes; never request data) to "
                        "this file, or to stdout with '-' (default '' = no access log).")
    x.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"],
                   help="Log level (default info).")
    return p


def tf_flag_names(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """The tensorflow_model_server flags, in the order --help lists them."""
    parser = parser or build_parser()
    group = next(g for g in parser._action_groups if g.title == "tensorflow_model_server flags")
    return [a.option_strings[0][2:] for a in group._group_actions]


def given_flags(argv: list[str]) -> frozenset[str]:
    """The flags named on the command line (`--name` or `--name=value`)."""
    names = set()
    for token in argv:
        if token == "--":
            break
        if token.startswith("--"):
            names.add(token[2:].split("=", 1)[0])
    return frozenset(names)
