"""The command-line flags, as one table: every flag of TF Serving's `tensorflow_model_server`
(model_servers/main.cc), with its name, default and meaning there, plus a few of this server's own.

`FLAGS` is the only place a flag and its default are written. From it come the parser and `--help`
(`build_parser()`), the `Options` dataclass's fields and defaults (options.py), and the defaults
docs/flags.rst is checked against (tests/test_flags.py). Each flag's help ends with
"[default: X; tensorflow_model_server: Y]" (only "[default: X]" where the two agree).

To add a flag: one `Flag(...)` row in `FLAGS`, in --help's order; its value is then `options.NAME`.
NOT_HONOURED lists the flags that are accepted but have no effect yet (the CLI logs one warning
line for each one given).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable

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


@dataclass(frozen=True)
class Flag:
    """One row of the table: `--name`, its text read by `parse`, `default` when not given."""
    name: str
    parse: Callable[[str], Any]     # the flag's text -> its value (argparse's type=)
    default: Any
    help: str
    metavar: str = "VALUE"
    shown: str | None = None        # the default as --help writes it, where the value alone does not say it
    tf_default: str | None = None   # tensorflow_model_server's default, where it differs from this server's
    own: bool = False               # this server's flag, not tensorflow_model_server's
    choices: tuple[str, ...] | None = None

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.parse is _bool:
            return "true" if self.default else "false"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        if isinstance(self.default, tuple):
            return ",".join(self.default)
        return str(self.default) if self.default != "" else "''"

    def field_type(self) -> type:
        """The type of the flag's `Options` field."""
        if self.parse is _bool:
            return bool
        if self.parse is _fraction:
            return float
        if self.parse is _tags:
            return tuple
        return str if self.parse is str else int


def _tags(text: str) -> tuple[str, ...]:
    """--saved_model_tags: "serve,gpu" -> ("serve", "gpu")."""
    return tuple(t for t in text.split(",") if t)


FLAGS: tuple[Flag, ...] = (
    # -- front ends
    Flag("port", _port, 8500,
         "TCP port for the gRPC API; 0 disables gRPC.", metavar="PORT"),
    Flag("grpc_socket_path", str, "",
         "If non-empty, also serve the gRPC API on this UNIX socket.", metavar="PATH"),
    Flag("grpc_channel_arguments", str, "",
         "Comma-separated gRPC server channel arguments, e.g. "
         "grpc.max_connection_age_ms=2000 (numbers are passed as integers).", metavar="ARGS"),
    Flag("grpc_max_threads", _positive_int, 4 * CPUS,
         "Most threads of the gRPC server.", metavar="N", shown="4 x CPUs"),
    Flag("enable_grpc_healthcheck_service", _bool, False,
         "Serve the standard gRPC health-checking service."),
    Flag("ssl_config_file", str, "",
         "An SSLConfig in protobuf text format (server_key, server_cert, custom_ca, "
         "client_verify): serve gRPC over TLS.", metavar="FILE"),
    Flag("use_alts_credentials", _bool, False,
         "Serve gRPC with Google ALTS credentials (only on Google Cloud, where gRPC "
         "makes them; not with --ssl_config_file)."),
    Flag("enable_serialization_as_tensor_content", _bool, False,
         "Write gRPC predict responses' tensors as "
         "tensor_content bytes."),
    Flag("rest_api_port", _port, 0,
         "Port for the HTTP/REST API; 0: no REST API. Must differ from --port.", metavar="PORT"),
    Flag("rest_api_num_threads", _positive_int, None,
         "Threads per worker that run REST requests. Measured here: 1 serves "
         "fastest without batching (Python runs one thread at a time per process: use --workers for more "
         "cores), so the default is 1, or 4 per CPU with batching (requests must wait together for a "
         "batch).", metavar="N", shown="1 (4 x CPUs with batching)", tf_default="4 x CPUs"),
    Flag("rest_api_timeout_in_ms", _non_negative_int, 30000,
         "Timeout for one REST request in milliseconds; 0 = none. It bounds the "
         "model run and, with batching, the time the request waits for its batch (a request still queued then "
         "is never run). Past it: 504 DEADLINE_EXCEEDED.", metavar="MS"),
    Flag("rest_api_enable_cors_support", _bool, False,
         "Add TF Serving's CORS headers (Access-Control-Allow-Origin: *) to "
         "every REST response, so that a web page from another origin can call the API. OPTIONS preflight "
         "requests are answered with or without it, as TF Serving does; it only adds the headers."),
    # -- models
    Flag("model_name", str, "default",
         "Name of the model, as in /v1/models/NAME (ignored with --model_config_file).", metavar="NAME"),
    Flag("model_base_path", str, "",
         "Absolute path of the model folder: numbered sub-folders are versions, the "
         "highest is served (ignored with --model_config_file).", metavar="PATH"),
    Flag("model_config_file", str, "",
         "A ModelServerConfig in protobuf text format (several models, version "
         "policies, labels). Replaces --model_name/--model_base_path.", metavar="FILE"),
    Flag("model_config_file_poll_wait_seconds", _non_negative_int, 0,
         "Re-read --model_config_file every S seconds and apply "
         "changes; 0 = read once.", metavar="S"),
    Flag("file_system_poll_wait_seconds", _non_negative_int, 1,
         "Look for new or removed versions every S seconds; 0 = look "
         "once.", metavar="S"),
    Flag("allow_version_labels_for_unavailable_models", _bool, False,
         "Allow a label in --model_config_file to point "
         "at a version that is not AVAILABLE yet (only a label not in use; a label already serving "
         "requests only moves to an AVAILABLE version)."),
    Flag("saved_model_tags", _tags, ("serve",),
         "Comma-separated tags of the MetaGraph to load.", metavar="TAGS"),
    Flag("platform_config_file", str, "",
         "A PlatformConfigMap in protobuf text format: its tensorflow platform's "
         "SessionBundleConfig (session config, batching, tags, warm-up, TensorFlow Lite, mixed precision) is used "
         "instead of the flags for them.", metavar="FILE"),
    # -- loading and unloading
    Flag("num_load_threads", _non_negative_int, 0,
         "Threads that load versions; 0: one at a time in the manager's thread.", metavar="N"),
    Flag("num_unload_threads", _non_negative_int, 0,
         "Threads that unload versions; 0: one at a time in the manager's thread.", metavar="N"),
    Flag("max_num_load_retries", _non_negative_int, 5,
         "Times a failed load is retried before giving up; 0: tried once.", metavar="N"),
    Flag("load_retry_interval_micros", _int, 60_000_000,
         "Microseconds between load retries; negative: no wait.", metavar="US"),
    Flag("flush_filesystem_caches", _bool, True,
         "Flush TensorFlow's file system caches after loads. This server "
         "reads models from local folders only, which have no such cache: no effect."),
    Flag("enable_model_warmup", _bool, True,
         "Replay assets.extra/tf_serving_warmup_requests before a version is "
         "AVAILABLE."),
    Flag("num_request_iterations_for_warmup", _non_negative_int, 0,
         "Times each warm-up request is replayed; used when > 0.", metavar="N"),
    # -- batching
    Flag("enable_batching", _bool, False,
         "Merge concurrent requests into one model run."),
    Flag("batching_parameters_file", str, "",
         "BatchingParameters in protobuf text format (max_batch_size, "
         "batch_timeout_micros, max_enqueued_batches, num_batch_threads, allowed_batch_sizes). Implies "
         "--enable_batching here (tensorflow_model_server refuses it without).", metavar="FILE"),
    Flag("enable_per_model_batching_parameters", _bool, False,
         "With --enable_batching, a version folder's "
         "batching_params.pbtxt replaces --batching_parameters_file for that version (the batch threads' "
         "number and name still come from the global file)."),
    # -- TensorFlow session and model formats
    Flag("tensorflow_session_parallelism", _non_negative_int, 0,
         "Threads of both TensorFlow pools, when neither of the next "
         "two flags is set; 0: auto.", metavar="N"),
    Flag("tensorflow_intra_op_parallelism", _non_negative_int, 0,
         "Threads TensorFlow uses inside one op; 0: one per core. "
         "1 often serves small models fastest, with parallelism coming from requests.", metavar="N"),
    Flag("tensorflow_inter_op_parallelism", _int, 0,
         "Threads TensorFlow uses to run independent ops at once; 0: "
         "one per core. Negative: every op runs in the request's own thread, which serves small models "
         "fastest.", metavar="N"),
    Flag("tensorflow_session_config_file", str, "",
         "A TensorFlow ConfigProto in protobuf text format for every "
         "session; the parallelism flags override its thread counts.", metavar="FILE"),
    Flag("per_process_gpu_memory_fraction", _fraction, 0.0,
         "Fraction of GPU memory each process takes, 0.0 to 1.0; 0: "
         "TensorFlow chooses. No effect on a machine without a GPU.", metavar="F"),
    Flag("xla_cpu_compilation_enabled", _bool, False,
         "Enable XLA:CPU JIT compilation. Without it (or the next flag) "
         "XLA compilation is off: a model that asks for XLA (jit_compile) fails with INTERNAL \"XLA compilation "
         "disabled\"."),
    Flag("xla_gpu_compilation_enabled", _bool, False,
         "Enable XLA:CPU and XLA:GPU JIT compilation (XLA:GPU has no "
         "effect on a machine without a GPU)."),
    Flag("mixed_precision", str, "",
         "Mixed precision mode ('bfloat16' to run float32 models in bfloat16).", metavar="MODE"),
    Flag("remove_unused_fields_from_bundle_metagraph", _bool, True,
         "Drop the MetaGraphDef fields serving does not "
         "use after load, to save memory."),
    Flag("enable_signature_method_name_check", _bool, False,
         "Check a SignatureDef's method_name against the API "
         "(predict/classify/regress) that calls it."),
    Flag("prefer_tflite_model", _bool, False,
         "Serve model.tflite from a version folder when there is one, instead of "
         "saved_model.pb."),
    Flag("num_tflite_pools", _positive_int, CPUS,
         "TensorFlow Lite interpreter pools per model.", metavar="N", shown="CPUs"),
    Flag("num_tflite_interpreters_per_pool", _positive_int, 1,
         "TensorFlow Lite interpreters in each pool.", metavar="N"),
    Flag("thread_pool_factory_config_file", str, "",
         "A ThreadPoolFactoryConfig in protobuf text format, naming a "
         "registered ThreadPoolFactory. None is registered (none in tensorflow_model_server either): any file "
         "stops the server with the registry's error.", metavar="FILE"),
    Flag("enable_profiler", _bool, True,
         "Serve TensorFlow's profiler service on the gRPC port, for "
         "tf.profiler.experimental.client.trace('grpc://HOST:PORT', ...) and TensorBoard's profile capture."),
    Flag("skip_initialize_tpu", _bool, False,
         "Skip initializing a TPU at start. No effect on a machine without a "
         "TPU."),
    Flag("monitoring_config_file", str, "",
         "A MonitoringConfig in protobuf text format; with prometheus_config "
         "{ enable: true } Prometheus metrics are served on the REST port at prometheus_config.path "
         "(default /monitoring/prometheus/metrics), added up over all workers.", metavar="FILE"),
    # -- this server's own
    Flag("rest_api_host", str, "0.0.0.0",
         "Address to listen on (as TF Serving; 127.0.0.1 for this machine only).", metavar="ADDR", own=True),
    Flag("workers", _positive_int, 1,
         "Worker processes, each with its own copy of the models.", metavar="N", own=True),
    Flag("rest_api_max_body_bytes", _non_negative_int, 16 << 20,
         "Largest request body in bytes (0 = no limit). A longer body is answered 413 with a JSON error "
         "before it is read. Memory: one worker holds at most about 0.7 GiB (TensorFlow and a small model) + "
         "--rest_api_max_buffered_bytes + --rest_api_num_threads x max(36 x this, 240 B x "
         "--max_request_elements) (measured: a JSON body costs up to 36 times its size while parsed, an "
         "element up to 240 bytes until answered), + 0.12 GiB with one thread (bodies of at most 1 MiB "
         "then run on the event loop beside it); with the defaults 0.7 + 0.06 + 1 x 0.56 + 0.12 GiB, within "
         "the 2 GiB that deploy/kubernetes gives a pod.", metavar="N", shown="16777216 = 16 MiB", own=True),
    Flag("max_request_elements", _non_negative_int, 1 << 20,
         "Most tensor elements one predict request may send, over all its inputs, and most examples one "
         "classify/regress request may send (0 = no limit). More is answered 400 INVALID_ARGUMENT before the "
         "model runs.", metavar="N", own=True),
    Flag("batching_queue_timeout_in_ms", _non_negative_int, 0,
         "With batching, the longest any request (REST or gRPC) may wait for its batch, in milliseconds (0 = no "
         "bound of its own: a REST request is bounded by --rest_api_timeout_in_ms, a gRPC request by its "
         "deadline if the client set one). A request past it answers DEADLINE_EXCEEDED (REST 504) and is never "
         "run.", metavar="MS", own=True),
    Flag("rest_api_body_timeout_in_ms", _non_negative_int, 60000,
         "Time a REST request's whole body may take to arrive once its headers are in, in milliseconds "
         "(60000 = 1 minute: 3 MB at 400 kbit/s; 0 = no bound). Until then the request holds no thread; past "
         "it: 408 and the connection is closed.", metavar="MS", own=True),
    Flag("rest_api_idle_timeout_in_ms", _non_negative_int, 50000,
         "A REST connection that sends no complete request headers for this long is closed (50000: the 50 s "
         "read timeout of libevent, TF Serving's HTTP layer). Idle connections are accepted up to the "
         "open-files limit (raised to its hard limit at start).", metavar="MS", own=True),
    Flag("rest_api_max_buffered_bytes", _non_negative_int, 64 << 20,
         "Most bytes of REST request bodies one worker holds at once, being received or run (0 = no bound). "
         "A request waits, holding no thread, for room for its Content-Length (for --rest_api_max_body_bytes "
         "when the length is unknown), in arrival order; a body of at most 1 MiB that fits goes ahead.",
         metavar="N", shown="67108864 = 64 MiB", own=True),
    Flag("grpc_message_read_timeout_s", _non_negative_int, 60,
         "Longest a gRPC call may take to send its whole request message, in seconds, from the call's start "
         "(60: 1 MB at 140 kbit/s; 0 = no bound). A call waiting for its message holds no thread; past this "
         "it is answered DEADLINE_EXCEEDED.", metavar="S", own=True),
    Flag("grpc_max_connection_idle_s", _non_negative_int, 300,
         "Close a gRPC connection that has had no call open for this many seconds (0 = never; the channel "
         "argument grpc.max_connection_idle_ms, which --grpc_channel_arguments can also set).",
         metavar="S", own=True),
    Flag("profiler_allow_python_tracer", _bool, False,
         "Let profiler clients turn on TensorFlow's Python tracer (python_tracer_level; it records every "
         "Python call). Off: as in tensorflow_model_server, which has no Python tracer, the level is taken "
         "as 0.", own=True),
    Flag("profiler_max_session_s", _positive_int, 60,
         "Longest profiler session, in seconds: a Profile call's duration_ms is cut to it, and a continuous "
         "profiling session not read with GetSnapshot within it is stopped and dropped.", metavar="S", own=True),
    Flag("access_log", str, "",
         "Write one JSON line per request (time, client address, REST or gRPC, API, model, the version that "
         "answered, signature, status, latency, body sizes; never request data) to this file, or to stdout "
         "with '-' ('' = no access log).", metavar="PATH|-", shown="''", own=True),
    Flag("log_level", str, "info", "Log level.", own=True, choices=("debug", "info", "warning", "error")),
)

BY_NAME = {f.name: f for f in FLAGS}

# tensorflow_model_server flags that are accepted and stored in Options but change nothing yet.
# Giving one logs one warning line that names it (cli.warn_not_honoured); never silently ignored.
NOT_HONOURED = {
    "skip_initialize_tpu": "no TPU support: nothing is initialized either way",
}

# --version is an action, not a setting (no Options field); --help lists it after this flag.
VERSION_AFTER = "monitoring_config_file"


def help_text(flag: Flag) -> str:
    """The flag's help as --help prints it: its text, then its default (and TF Serving's, where it differs)."""
    default = f"default: {flag.shown_default()}"
    if flag.tf_default is not None:
        default += f"; tensorflow_model_server: {flag.tf_default}"
    return f"{flag.help} [{default}]"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of `FLAGS`; `prog` is the command --help names (default: python -m <this package>)."""
    command = prog or f"python -m {__package__}"
    p = argparse.ArgumentParser(
        prog=command,
        description="A server that speaks TensorFlow Serving's REST API, with every flag of "
                    "tensorflow_model_server.",
        epilog=f"Example: {command} --rest_api_port=8501 --model_name=MLP "
               "--model_base_path=/abs/path/saved_with_signature",
        allow_abbrev=False,   # as tensorflow_model_server: a flag is named in full
    )
    tf = p.add_argument_group("tensorflow_model_server flags")
    own = p.add_argument_group("flags of this server (not in tensorflow_model_server)")
    for flag in FLAGS:
        kw: dict[str, Any] = {"type": flag.parse, "default": flag.default, "metavar": flag.metavar}
        if flag.parse is _bool:
            kw.update(nargs="?", const=True, metavar="BOOL")
        elif flag.parse is _tags:
            kw["default"] = ",".join(flag.default)   # parsed by _tags like a given value
        if flag.choices:
            kw.update(choices=flag.choices, metavar=None)
        (own if flag.own else tf).add_argument(f"--{flag.name}", help=help_text(flag), **kw)
        if flag.name == VERSION_AFTER:
            tf.add_argument("--version", action="version", version=f"TensorFlow Serving in Python {VERSION}",
                            help="Print the version and exit. [default: false]")
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
