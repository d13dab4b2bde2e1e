"""One frozen `Options` object, built once from the flags; the CLI, the worker and the front ends read it.

`Options.from_args(namespace, given)` takes what `flags.build_parser()` parsed and reads every file
the flags name (model config, batching parameters, monitoring config, SSL config, TensorFlow
session config, platform config, thread pool config) into plain values, so that a bad file stops
the server before any worker starts, and a worker never reads them again: the parent hands its
Options to each worker in a file only the server's user can read (`write_settings_file` /
`read_settings_file`), never in the environment.

The flag fields are made from flags.FLAGS (names, types and defaults: written there only). Derived
fields: `models` (the ModelSettings to serve), `batching_parameters`, `prometheus`, `ssl_config`, the
files' protobuf messages a loader needs (`session_config`, `platform_config`, `platform`,
`thread_pool_factory_config`) and `given_flags` (the flags named on the command line). A servable
loader reads its settings from the same Options (servable.load_servable).

With `--platform_config_file`, as in tensorflow_model_server, the file's `tensorflow` platform config
(a SessionBundleConfig: platform_config.py) is used instead of the flags it covers: the session
config, batching, SavedModel tags, warm-up, TensorFlow Lite and mixed precision fields hold the
file's values, and those flags are not read (a warning names the ones given).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import config as config_mod
from . import flags, textproto
from .config import ConfigError, ModelSettings
from .platform_config import SessionBundleSettings

# The environment variable that tells worker processes where their Options are (a path only; the file
# itself is readable by the server's user alone and removed when the server exits).
SETTINGS_FILE_ENV = "TF_MODEL_SERVER_SETTINGS_FILE"

log = logging.getLogger("server")


@dataclass(frozen=True)
class SSLSettings:
    """`--ssl_config_file` (tensorflow.serving.SSLConfig): PEM texts and whether clients must show one."""
    server_key: str = ""
    server_cert: str = ""
    custom_ca: str = ""
    client_verify: bool = False


def _flag_values_class() -> type:
    """A frozen dataclass with one field per row of flags.FLAGS: the flag's name, its type, its default."""
    cls = dataclasses.make_dataclass(
        "_FlagValues", [(f.name, f.field_type(), field(default=f.default)) for f in flags.FLAGS], frozen=True)
    cls.__module__ = __name__
    return cls


_FlagValues: Any = _flag_values_class()


@dataclass(frozen=True)
class Options(_FlagValues):
    """Every flag's value (fields named as the flags, from flags.FLAGS), then what the files they name say."""
    # -- derived: what the files say, read once
    models: tuple[ModelSettings, ...] = ()
    batching_parameters: Any = None             # batching.parameters.BatchingParameters with batching on
    prometheus: Any = None                      # monitoring.PrometheusSettings when metrics are enabled
    ssl_config: SSLSettings | None = None
    session_config: bytes = b""                 # the ConfigProto of --tensorflow_session_config_file (or the
                                                # platform config's), serialized; b"": none
    platform_config: bytes = b""                # --platform_config_file's PlatformConfigMap, serialized
    platform: SessionBundleSettings | None = None   # its `tensorflow` platform's SessionBundleConfig
    thread_pool_factory_config: bytes = b""     # --thread_pool_factory_config_file, serialized
    given_flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.rest_api_num_threads is None:
            # Measured on 2 cores, one worker, 1-image MNIST requests at 32 connections: 1 thread 3,939 req/s,
            # 2 threads 3,220 (earlier code: 1 thread 1,841, 2: 1,675, 4: 1,436, 8: ~1,420): Python runs one
            # thread at a time, so more threads only contend; more cores want more workers. Batching needs
            # requests waiting together for a batch: several threads per core.
            object.__setattr__(self, "rest_api_num_threads", 4 * flags.CPUS if self.enable_batching else 1)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_args(cls, args: argparse.Namespace, given: frozenset[str] = frozenset(),
                  check_paths: bool = True) -> "Options":
        """Options from parsed flags; reads every file they name. Raises config.ConfigError."""
        values = {f.name: getattr(args, f.name) for f in flags.FLAGS}
        if args.batching_parameters_file:
            values["enable_batching"] = True
        platform = None
        if args.platform_config_file:
            platform = _platform_settings(args.platform_config_file, given)
            values.update(platform.flag_values)
        values["given_flags"] = frozenset(given)
        opts = cls(**values)
        return opts._read_files(check_paths, platform)

    def _read_files(self, check_paths: bool, platform: "_Platform | None" = None) -> "Options":
        if self.model_config_file:
            models = config_mod.read_config_file(self.model_config_file, check_paths=check_paths)
        else:
            models = config_mod.single_model(self.model_name, self.model_base_path, check_paths=check_paths)
        settings = platform.settings if platform is not None else None
        if platform is not None and settings is None and models:
            # ServerCore: no adapter for the platform every model here is on.
            from .registry import StartError
            raise StartError("INVALID_ARGUMENT", f"Model {models[0].name} requests unsupported platform "
                                                 f"{config_mod.TENSORFLOW_PLATFORM}")
        batching = None
        if platform is not None:
            batching = settings.batching_parameters if settings is not None else None
        elif self.enable_batching:
            from .batching.parameters import read_parameters
            batching = read_parameters(self.batching_parameters_file or None)
        prometheus = None
        if self.monitoring_config_file:
            from . import monitoring
            monitoring_settings = monitoring.read_config_file(self.monitoring_config_file)
            prometheus = monitoring_settings if monitoring_settings.enable else None
        return self.replace(
            models=tuple(models), batching_parameters=batching, prometheus=prometheus,
            ssl_config=_read_ssl_config(self.ssl_config_file) if self.ssl_config_file else None,
            session_config=(settings.session_config if settings is not None
                            else _read_session_config(self.tensorflow_session_config_file)),
            platform_config=platform.serialized if platform is not None else b"", platform=settings,
            thread_pool_factory_config=_read_thread_pool_config(self.thread_pool_factory_config_file))

    def replace(self, **changes: Any) -> "Options":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ reading

    @property
    def grpc_enabled(self) -> bool:
        """Whether the flags ask for a gRPC front end (TF Serving: --port nonzero or a socket path)."""
        return self.port != 0 or bool(self.grpc_socket_path)

    @property
    def rest_enabled(self) -> bool:
        return self.rest_api_port != 0

    # ------------------------------------------------------------------ to the workers

    def write_settings_file(self) -> str:
        """These Options (TLS key included) in a new file that only this user can read, for the worker
        processes started later; returns its path. Remove it with `remove_settings_file` at exit.

        Never the environment: /proc/<pid>/environ is readable by anyone who can see the process's
        environment, every child inherits it, and one variable is limited to 128 KiB on Linux."""
        folder = tempfile.mkdtemp(prefix="tf-model-server-")   # mode 0700
        path = os.path.join(folder, "options.pickle")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(self, f)
        return path

    @classmethod
    def read_settings_file(cls, path: str) -> "Options":
        """The Options the parent wrote with `write_settings_file` (its own object, pickled)."""
        with open(path, "rb") as f:
            options = pickle.load(f)
        if not isinstance(options, cls):
            raise TypeError(f"{path} holds no Options")
        return options


def remove_settings_file(path: str) -> None:
    """Remove a file from `Options.write_settings_file` and its folder (already gone: nothing to do)."""
    for remove, target in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
        try:
            remove(target)
        except FileNotFoundError:
            pass


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
    settings: SessionBundleSettings | None   # None: the file has no `tensorflow` platform
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
