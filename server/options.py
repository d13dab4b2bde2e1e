"""One frozen `Options` object, built once from the flags; the CLI, the worker and the front ends read it.

`Options.from_args(namespace, given)` takes what `flags.build_parser()` parsed and reads every file
the flags name (model config, batching parameters, monitoring config, SSL config, TensorFlow
session config, platform config, thread pool config) into plain values, so that a bad file stops
the server before any worker starts, and a worker never reads them again: the parent hands its
Options to each worker (`to_env` / `from_env`).

Field names are the flags' names. Derived fields: `models` (the ModelSettings to serve),
`batching_parameters`, `prometheus`, `ssl_config`, `loader` (what a servable loader receives: the
TensorFlow session and model-format flags) and `given_flags` (the flags named on the command line).

With `--platform_config_file`, as in tensorflow_model_server, the file's `tensorflow` platform config
(a SessionBundleConfig: platform_config.py) is used instead of the flags it covers: the session
config, batching, SavedModel tags, warm-up, TensorFlow Lite and mixed precision fields hold the
file's values, and those flags are not read (a warning names the ones given).
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import logging
import os
import pickle
from dataclasses import dataclass, field, fields

from . import config as config_mod
from . import textproto
from .config import ConfigError, ModelSettings

OPTIONS_ENV = "TF_SERVING_FLASK_OPTIONS"

log = logging.getLogger("server")


@dataclass(frozen=True)
class SSLSettings:
    """`--ssl_config_file` (tensorflow.serving.SSLConfig): PEM texts and whether clients must show one."""
    server_key: str = ""
    server_cert: str = ""
    custom_ca: str = ""
    client_verify: bool = False


@dataclass(frozen=True)
class LoaderOptions:
    """What loading one version needs from the flags (TF Serving's SessionBundleConfig).

    Protobuf messages from files are kept serialized (bytes; b"" = none given) so that the
    object stays frozen and can travel to the workers.
    """
    saved_model_tags: tuple[str, ...] = ("serve",)
    run_timeout_ms: int = 30000                     # --rest_api_timeout_in_ms
    intra_op_parallelism: int = 0                   # --tensorflow_intra_op_parallelism
    inter_op_parallelism: int = 0                   # --tensorflow_inter_op_parallelism
    session_parallelism: int = 0                    # --tensorflow_session_parallelism
    session_config: bytes = b""                     # --tensorflow_session_config_file: a ConfigProto
    per_process_gpu_memory_fraction: float = 0.0    # no effect without a GPU
    xla_cpu_compilation_enabled: bool = False
    xla_gpu_compilation_enabled: bool = False       # XLA:GPU: no effect without a GPU
    mixed_precision: str = ""
    remove_unused_fields_from_bundle_metagraph: bool = True
    platform_config: bytes = b""                    # --platform_config_file: a PlatformConfigMap
    enable_signature_method_name_check: bool = False
    prefer_tflite_model: bool = False
    num_tflite_pools: int = 1
    num_tflite_interpreters_per_pool: int = 1
    thread_pool_factory_config: bytes = b""         # --thread_pool_factory_config_file
    # From --platform_config_file's SessionBundleConfig only (platform_config.py):
    session_config_as_is: bool = False              # session_config is the file's ConfigProto: no flag applies
    session_target: str = ""
    session_run_load_threadpool_index: int = -1     # -1: not set
    enable_session_metadata: bool = False
    enable_saved_model_config: bool = False
    num_request_iterations_set: bool = False        # num_request_iterations_for_warmup used even when 0
    enable_profiler: bool = True
    skip_initialize_tpu: bool = False               # no effect without a TPU
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0      # used when > 0

    def session_config_proto(self):
        """The session's ConfigProto as TF Serving builds it (model_servers/server.cc): the file's
        ConfigProto, the GPU memory fraction, then the thread counts (intra/inter when either is
        set, else --tensorflow_session_parallelism for both)."""
        from tensorflow.core.protobuf import config_pb2
        proto = config_pb2.ConfigProto()
        if self.session_config:
            proto.ParseFromString(self.session_config)
        if self.session_config_as_is:   # --platform_config_file: its ConfigProto, as TF Serving uses it
            return proto
        proto.gpu_options.per_process_gpu_memory_fraction = self.per_process_gpu_memory_fraction
        if self.intra_op_parallelism != 0 or self.inter_op_parallelism != 0:
            # Nonzero rather than TF Serving's > 0: a negative inter-op count runs ops in the caller's thread.
            proto.intra_op_parallelism_threads = self.intra_op_parallelism
            proto.inter_op_parallelism_threads = self.inter_op_parallelism
        else:
            proto.intra_op_parallelism_threads = self.session_parallelism
            proto.inter_op_parallelism_threads = self.session_parallelism
        return proto


@dataclass(frozen=True)
class Options:
    # -- gRPC front end (tensorflow_model_server's flags)
    port: int = 8500
    grpc_socket_path: str = ""
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = 4 * (os.cpu_count() or 1)
    enable_grpc_healthcheck_service: bool = False
    ssl_config_file: str = ""
    use_alts_credentials: bool = False
    enable_serialization_as_tensor_content: bool = False
    # -- REST front end
    rest_api_port: int = 0
    rest_api_num_threads: int = 1
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    # -- models
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    saved_model_tags: tuple[str, ...] = ("serve",)
    platform_config_file: str = ""
    # -- loading and unloading
    num_load_threads: int = 0
    num_unload_threads: int = 0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    flush_filesystem_caches: bool = True
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0
    # -- batching
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_per_model_batching_parameters: bool = False
    # -- TensorFlow session and model formats
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    tensorflow_session_config_file: str = ""
    per_process_gpu_memory_fraction: float = 0.0
    xla_cpu_compilation_enabled: bool = False
    xla_gpu_compilation_enabled: bool = False
    mixed_precision: str = ""
    remove_unused_fields_from_bundle_metagraph: bool = True
    enable_signature_method_name_check: bool = False
    prefer_tflite_model: bool = False
    num_tflite_pools: int = os.cpu_count() or 1
    num_tflite_interpreters_per_pool: int = 1
    thread_pool_factory_config_file: str = ""
    enable_profiler: bool = True
    skip_initialize_tpu: bool = False
    monitoring_config_file: str = ""
    # -- this server's own flags
    rest_api_host: str = "0.0.0.0"
    workers: int = 1
    rest_api_max_body_bytes: int = 256 << 20   # a longer body: 413
    max_request_elements: int = 1 << 26        # more tensor elements (or examples) in one request: 400
    batching_queue_timeout_in_ms: int = 0      # longer in the batching queue: DEADLINE_EXCEEDED; 0: no bound
    log_level: str = "info"
    access_log: str = ""                       # one JSON line per request to this file, "-": stdout; "": none
    # -- derived: what the files say, read once
    models: tuple[ModelSettings, ...] = ()
    batching_parameters: object = None          # batching.parameters.BatchingParameters with batching on
    prometheus: object = None                   # monitoring.PrometheusSettings when metrics are enabled
    ssl_config: SSLSettings | None = None
    loader: LoaderOptions = field(default_factory=LoaderOptions)
    given_flags: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ building

    @classmethod
    def from_args(cls, args: argparse.Namespace, given: frozenset[str] = frozenset(),
                  check_paths: bool = True) -> "Options":
        """Options from parsed flags; reads every file they name. Raises config.ConfigError."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        values["saved_model_tags"] = tuple(t for t in str(args.saved_model_tags).split(",") if t)
        if args.batching_parameters_file:
            values["enable_batching"] = True
        platform = None
        if args.platform_config_file:
            platform = _platform_settings(args.platform_config_file, given)
            values.update(platform.flag_values)
        if args.rest_api_num_threads is None:
            # Measured on 2 cores, one worker, 1-image MNIST requests at 32 connections: 1 thread 3,939 req/s,
            # 2 threads 3,220 (earlier code: 1 thread 1,841, 2: 1,675, 4: 1,436, 8: ~1,420): Python runs one
            # thread at a time, so more threads only contend; more cores want more workers. Batching needs
            # requests waiting together for a batch: several threads per core.
            values["rest_api_num_threads"] = 4 * (os.cpu_count() or 1) if values["enable_batching"] else 1
        values["given_flags"] = frozenset(given)
        opts = cls(**values)
        return opts._read_files(check_paths, platform)

    def _read_files(self, check_paths: bool, platform=None) -> "Options":
        if self.model_config_file:
            models = config_mod.read_config_file(self.model_config_file, check_paths=check_paths)
        else:
            models = config_mod.single_model(self.model_name, self.model_base_path, check_paths=check_paths)
        if platform is not None and platform.settings is None and models:
            # ServerCore: no adapter for the platform every model here is on.
            from .registry import StartError
            raise StartError("INVALID_ARGUMENT", f"Model {models[0].name} requests unsupported platform "
                                                 f"{config_mod.TENSORFLOW_PLATFORM}")
        batching = None
        if platform is not None:
            batching = platform.settings.batching_parameters if platform.settings is not None else None
        elif self.enable_batching:
            from .batching.parameters import read_parameters
            batching = read_parameters(self.batching_parameters_file or None)
        prometheus = None
        if self.monitoring_config_file:
            from . import monitoring
            settings = monitoring.read_config_file(self.monitoring_config_file)
            prometheus = settings if settings.enable else None
        ssl = _read_ssl_config(self.ssl_config_file) if self.ssl_config_file else None
        loader = LoaderOptions(
            saved_model_tags=self.saved_model_tags,
            run_timeout_ms=self.rest_api_timeout_in_ms,
            intra_op_parallelism=self.tensorflow_intra_op_parallelism,
            inter_op_parallelism=self.tensorflow_inter_op_parallelism,
            session_parallelism=self.tensorflow_session_parallelism,
            session_config=(platform.settings.session_config if platform is not None and platform.settings
                            else _read_session_config(self.tensorflow_session_config_file)),
            per_process_gpu_memory_fraction=self.per_process_gpu_memory_fraction,
            xla_cpu_compilation_enabled=self.xla_cpu_compilation_enabled,
            xla_gpu_compilation_enabled=self.xla_gpu_compilation_enabled,
            mixed_precision=self.mixed_precision,
            remove_unused_fields_from_bundle_metagraph=self.remove_unused_fields_from_bundle_metagraph,
            platform_config=platform.serialized if platform is not None else b"",
            enable_signature_method_name_check=self.enable_signature_method_name_check,
            prefer_tflite_model=self.prefer_tflite_model,
            num_tflite_pools=self.num_tflite_pools,
            num_tflite_interpreters_per_pool=self.num_tflite_interpreters_per_pool,
            thread_pool_factory_config=_read_thread_pool_config(self.thread_pool_factory_config_file),
            enable_profiler=self.enable_profiler,
            skip_initialize_tpu=self.skip_initialize_tpu,
            enable_model_warmup=self.enable_model_warmup,
            num_request_iterations_for_warmup=self.num_request_iterations_for_warmup,
        )
        if platform is not None and platform.settings is not None:
            st = platform.settings
            loader = dataclasses.replace(
                loader, session_config_as_is=True, session_target=st.session_target,
                session_run_load_threadpool_index=st.session_run_load_threadpool_index,
                enable_session_metadata=st.enable_session_metadata,
                enable_saved_model_config=st.enable_saved_model_config,
                num_request_iterations_set=st.num_request_iterations_set)
        return self.replace(models=tuple(models), batching_parameters=batching, prometheus=prometheus,
                            ssl_config=ssl, loader=loader)

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ reading

    @property
    def grpc_enabled(self) -> bool:
        """Whether the flags ask for a gRPC front end (TF Serving: --port nonzero or a socket path)."""
        return self.port != 0 or bool(self.grpc_socket_path)

    @property
    def rest_enabled(self) -> bool:
        return self.rest_api_port != 0

    def grpc_channel_args(self) -> list[tuple[str, int | str]]:
        """--grpc_channel_arguments as TF Serving passes them: "k=v,..." with integer values as ints."""
        result = []
        for item in self.grpc_channel_arguments.split(","):
            if not item:
                continue
            key, _, value = item.partition("=")
            try:
                result.append((key, int(value)))
            except ValueError:
                result.append((key, value))
        return result

    # ------------------------------------------------------------------ to the workers

    def to_env(self, environ=os.environ) -> None:
        """Hand these Options to worker processes started later (they inherit the environment)."""
        environ[OPTIONS_ENV] = base64.b64encode(pickle.dumps(self)).decode("ascii")

    @classmethod
    def from_env(cls, environ=os.environ) -> "Options":
        """The Options the parent process handed over with `to_env` (its own object, pickled)."""
        return pickle.loads(base64.b64decode(environ[OPTIONS_ENV]))


# ---------------------------------------------------------------------- the other files the flags name

_SSL = None


def _ssl_message_class():
    global _SSL
    if _SSL is None:
        S, B = textproto.STRING, textproto.BOOL
        _SSL = textproto.message_classes(
            "tensorflow_serving/config/ssl_config.proto", "tensorflow.serving",
            {"SSLConfig": [("server_key", 1, textproto.OPTIONAL, S, None),
                           ("server_cert", 2, textproto.OPTIONAL, S, None),
                           ("custom_ca", 3, textproto.OPTIONAL, S, None),
                           ("client_verify", 4, textproto.OPTIONAL, B, None)]})["SSLConfig"]
    return _SSL


def _read_ssl_config(path: str) -> SSLSettings:
    msg = textproto.read(path, _ssl_message_class()(), "SSL config (--ssl_config_file)", ConfigError)
    return SSLSettings(msg.server_key, msg.server_cert, msg.custom_ca, msg.client_verify)


def _read_session_config(path: str) -> bytes:
    if not path:
        return b""
    from tensorflow.core.protobuf import config_pb2
    msg = textproto.read(path, config_pb2.ConfigProto(), "TensorFlow session config "
                         "(--tensorflow_session_config_file)", ConfigError)
    return msg.SerializeToString()


# The flags whose settings tensorflow_model_server takes from --platform_config_file instead
# (model_servers/server.cc builds its SessionBundleConfig from them only without the file).
PLATFORM_CONFIG_REPLACES = (
    "enable_batching", "batching_parameters_file", "enable_per_model_batching_parameters",
    "tensorflow_session_config_file", "per_process_gpu_memory_fraction", "tensorflow_session_parallelism",
    "tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism", "saved_model_tags",
    "enable_model_warmup", "num_request_iterations_for_warmup", "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model", "num_tflite_interpreters_per_pool", "num_tflite_pools", "mixed_precision")


@dataclasses.dataclass(frozen=True)
class _Platform:
    serialized: bytes
    settings: object            # platform_config.SessionBundleSettings, or None: no `tensorflow` platform
    flag_values: dict


def _platform_settings(path: str, given: frozenset[str]) -> _Platform:
    """--platform_config_file read and checked; the Options fields it replaces, with its values."""
    from .platform_config import read_platform_config
    serialized, st = read_platform_config(path)
    ignored = sorted(given & set(PLATFORM_CONFIG_REPLACES))
    if ignored:
        log.warning("--platform_config_file replaces %s: %s not used, as in tensorflow_model_server",
                    ", ".join(f"--{name}" for name in ignored), "it is" if len(ignored) == 1 else "they are")
    values = {"batching_parameters_file": "", "tensorflow_session_config_file": "", "enable_batching": False,
              "enable_per_model_batching_parameters": False}
    if st is not None:
        values.update(
            enable_batching=st.batching_parameters is not None,
            enable_per_model_batching_parameters=st.enable_per_model_batching_params,
            saved_model_tags=st.saved_model_tags, enable_model_warmup=st.enable_model_warmup,
            num_request_iterations_for_warmup=st.num_request_iterations_for_warmup,
            remove_unused_fields_from_bundle_metagraph=st.remove_unused_fields_from_bundle_metagraph,
            prefer_tflite_model=st.prefer_tflite_model, num_tflite_pools=st.num_tflite_pools,
            num_tflite_interpreters_per_pool=st.num_tflite_interpreters_per_pool, mixed_precision=st.mixed_precision)
    return _Platform(serialized, st, values)


def _read_thread_pool_config(path: str) -> bytes:
    if not path:
        return b""
    from google.protobuf import any_pb2
    cls = textproto.message_classes(
        "tensorflow_serving/servables/tensorflow/thread_pool_factory_config.proto", "tensorflow.serving",
        {"ThreadPoolFactoryConfig": [("thread_pool_factory_config", 1, textproto.OPTIONAL, textproto.MESSAGE,
                                      ".google.protobuf.Any")]},
        dependencies=[any_pb2.DESCRIPTOR])["ThreadPoolFactoryConfig"]
    from .registry import StartError, create_from_any
    try:
        msg = textproto.read(path, cls(), "thread pool factory config (--thread_pool_factory_config_file)",
                             ConfigError, descriptor_pool=_any_types())
        # ThreadPoolFactoryRegistry::CreateFromAny: open-source tensorflow_model_server registers no
        # ThreadPoolFactory (only its tests register a fake one), so every file ends in its registry's
        # error and the server does not start; so here.
        create_from_any(msg.thread_pool_factory_config, THREAD_POOL_FACTORIES, _any_types())
    except ConfigError as exc:
        raise StartError.wrap(exc) from None
    return msg.SerializeToString()


# ThreadPoolFactory config message type -> factory; tensorflow_model_server registers none.
THREAD_POOL_FACTORIES: dict = {}


def _any_types():
    from .platform_config import any_types
    return any_types()
