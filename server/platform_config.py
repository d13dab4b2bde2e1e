"""`--platform_config_file`: TF Serving's PlatformConfigMap, read into what the loader, batching and
warm-up take.

tensorflow_model_server builds a PlatformConfigMap from the flags (session config, batching,
tags, warm-up, TensorFlow Lite, mixed precision) unless `--platform_config_file` names one: then
the file's map is used instead and those flags are not read at all (model_servers/server.cc).
Each platform's `source_adapter_config` is a google.protobuf.Any that names a registered source
adapter; the one registered is `tensorflow.serving.SavedModelBundleSourceAdapterConfig`, whose
`legacy_config` is a SessionBundleConfig (servables/tensorflow/session_bundle_config.proto).

The tensorflow-serving-api wheel ships PlatformConfigMap but not SessionBundleConfig and its
neighbours, so their message classes are built here (textproto.message_classes) from descriptors
with TF Serving's package, names, numbers and types; their fields' own types (ConfigProto,
BatchingOptions, NamedTensorProto) are TensorFlow's. `read_platform_config` parses the file with
them, checks every platform's Any as TF Serving's registry does (registry.create_from_any) and
returns the `tensorflow` platform's SessionBundleConfig as a `SessionBundleSettings`. Models here
are on the `tensorflow` platform only (config.py refuses others, as before): entries for other
platforms are checked the same way but serve no model.

What each SessionBundleConfig field does here:
- session_target, session_config, saved_model_tags (empty: "serve"), session_run_load_threadpool_index
  (RunOptions.inter_op_thread_pool of the restore and init ops), enable_session_metadata
  (ConfigProto.experimental.session_metadata = model name and version), mixed_precision,
  remove_unused_fields_from_bundle_metagraph, prefer_tflite_model, num_tflite_pools (0: the
  deprecated num_tflite_interpreters), num_tflite_interpreters_per_pool: the loader, as TF Serving's
  SavedModelBundleFactory.
- batching_parameters: batching on with those parameters (the same checks as a batching parameters
  file); enable_per_model_batching_params: a version's batching_params.pbtxt replaces them.
  wrap_session_with_no_threading_params: TF Serving then wraps the session without batching, so
  batching stays off.
- enable_model_warmup, model_warmup_options.num_request_iterations: warm-up.
- enable_saved_model_config: every SavedModel load fails with UNIMPLEMENTED, as in open-source TF
  Serving.
- No effect, as in open-source TF Serving's SavedModelBundleFactory: experimental_fixed_input_tensors,
  in_graph_batching_parameters (read by its TFRT loader only), experimental_transient_ram_bytes_during_load
  and resource_estimation_uses_validation_result (resource estimates: this server has no resource
  tracker).
- model_warmup_options.num_model_warmup_threads (more threads replay the same records at once) and
  enable_all_batch_sizes_warmup (extra warm-up runs of in-graph BatchFunction ops): warm-up replays
  the records in one thread; a warning is logged when they are set.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from . import textproto
from .config import ConfigError
from .registry import StartError, create_from_any

log = logging.getLogger("server")

TENSORFLOW_PLATFORM = "tensorflow"
SOURCE_ADAPTER = "tensorflow.serving.SavedModelBundleSourceAdapterConfig"
WHAT = "platform config (--platform_config_file)"

_CLASSES = None


def message_classes() -> dict:
    """{name: class} for SavedModelBundleSourceAdapterConfig, SessionBundleConfig, ModelWarmupOptions
    and BatchingParameters, built once (one private descriptor pool)."""
    global _CLASSES
    if _CLASSES is None:
        from google.protobuf import wrappers_pb2
        from tensorflow.core.protobuf import config_pb2, named_tensor_pb2

        from .batching.parameters import _FIELDS as BATCHING_FIELDS
        OPT, R, M = textproto.OPTIONAL, textproto.REPEATED, textproto.MESSAGE
        B, S, I32, I64, U64 = textproto.BOOL, textproto.STRING, textproto.INT32, textproto.INT64, textproto.UINT64
        i32 = ".google.protobuf.Int32Value"
        pkg = ".tensorflow.serving."
        _CLASSES = textproto.message_classes(
            "tensorflow_serving/servables/tensorflow/session_bundle_config.proto", "tensorflow.serving", {
                "ModelWarmupOptions": [
                    ("num_request_iterations", 1, OPT, M, i32),
                    ("num_model_warmup_threads", 2, OPT, M, i32),
                    ("model_name", 3, OPT, S, None),
                    ("model_version", 4, OPT, I64, None),
                    ("enable_all_batch_sizes_warmup", 5, OPT, B, None)],
                "BatchingParameters": BATCHING_FIELDS,
                "SessionBundleConfig": [
                    ("session_target", 1, OPT, S, None),
                    ("session_config", 2, OPT, M, ".tensorflow.ConfigProto"),
                    ("batching_parameters", 3, OPT, M, pkg + "BatchingParameters"),
                    ("in_graph_batching_parameters", 7, OPT, M, ".tensorflow.BatchingOptions"),
                    ("session_run_load_threadpool_index", 4, OPT, M, i32),
                    ("experimental_transient_ram_bytes_during_load", 5, OPT, U64, None),
                    ("saved_model_tags", 6, R, S, None),
                    ("experimental_fixed_input_tensors", 778, R, M, ".tensorflow.NamedTensorProto"),
                    ("enable_model_warmup", 779, OPT, B, None),
                    ("model_warmup_options", 780, OPT, M, pkg + "ModelWarmupOptions"),
                    ("enable_session_metadata", 781, OPT, B, None),
                    ("remove_unused_fields_from_bundle_metagraph", 782, OPT, B, None),
                    ("prefer_tflite_model", 783, OPT, B, None),
                    ("resource_estimation_uses_validation_result", 784, OPT, B, None),
                    ("num_tflite_interpreters", 785, OPT, I32, None),
                    ("num_tflite_interpreters_per_pool", 786, OPT, I32, None),
                    ("num_tflite_pools", 787, OPT, I32, None),
                    ("wrap_session_with_no_threading_params", 788, OPT, B, None),
                    ("enable_per_model_batching_params", 789, OPT, B, None),
                    ("enable_saved_model_config", 790, OPT, B, None),
                    ("mixed_precision", 791, OPT, S, None)],
                "SavedModelBundleSourceAdapterConfig": [
                    ("legacy_config", 1000, OPT, M, pkg + "SessionBundleConfig")],
            }, dependencies=[wrappers_pb2.DESCRIPTOR, config_pb2.DESCRIPTOR, named_tensor_pb2.DESCRIPTOR])
    return _CLASSES


def any_types() -> textproto.AnyTypes:
    """The message types an Any in the file may hold: these, then every type this process has loaded
    (as tensorflow_model_server has its compiled-in types)."""
    from google.protobuf import descriptor_pool
    pool = message_classes()["SessionBundleConfig"].DESCRIPTOR.file.pool
    return textproto.AnyTypes(pool, descriptor_pool.Default())


@dataclass(frozen=True)
class SessionBundleSettings:
    """The `tensorflow` platform's SessionBundleConfig, in plain values."""
    session_target: str = ""
    session_config: bytes = b""                 # a serialized ConfigProto, used as it is
    batching_parameters: object = None          # batching.parameters.BatchingParameters: batching on
    enable_per_model_batching_params: bool = False
    session_run_load_threadpool_index: int = -1  # -1: not set
    saved_model_tags: tuple[str, ...] = ("serve",)
    enable_model_warmup: bool = False
    num_request_iterations_for_warmup: int = 0   # with num_request_iterations_set; else 1 iteration
    num_request_iterations_set: bool = False
    enable_session_metadata: bool = False
    remove_unused_fields_from_bundle_metagraph: bool = False
    prefer_tflite_model: bool = False
    num_tflite_pools: int = 1
    num_tflite_interpreters_per_pool: int = 1
    enable_saved_model_config: bool = False
    mixed_precision: str = ""


def read_platform_config(path: str) -> tuple[bytes, SessionBundleSettings | None]:
    """(the file's PlatformConfigMap serialized, its `tensorflow` platform's settings or None when
    it has no such platform). Raises StartError with TF Serving's message."""
    from tensorflow_serving.config import platform_config_pb2
    try:
        msg = textproto.read(path, platform_config_pb2.PlatformConfigMap(), WHAT, ConfigError,
                             descriptor_pool=any_types())
        settings = None
        for platform in sorted(msg.platform_configs):
            adapter = create_from_any(msg.platform_configs[platform].source_adapter_config,
                                      {SOURCE_ADAPTER: lambda config: config}, any_types())
            legacy = _session_bundle_settings(adapter.legacy_config)
            if platform == TENSORFLOW_PLATFORM:
                settings = legacy
    except ConfigError as exc:
        raise StartError.wrap(exc) from None
    return msg.SerializeToString(), settings


def _session_bundle_settings(config) -> SessionBundleSettings:
    from .batching.parameters import BatchingConfigError, BatchingParameters
    batching = None
    if config.HasField("batching_parameters"):
        try:
            batching = BatchingParameters.from_proto(config.batching_parameters)
        except BatchingConfigError as exc:
            raise ConfigError(str(exc)) from None
        if config.wrap_session_with_no_threading_params:
            # SavedModelBundleFactory wraps the session to ignore thread pool options instead of batching it.
            batching = None
    warmup = config.model_warmup_options
    if warmup.HasField("num_model_warmup_threads") and warmup.num_model_warmup_threads.value > 1:
        log.warning("%s: model_warmup_options.num_model_warmup_threads is not used by this server: warm-up "
                    "replays the records in one thread", WHAT)
    if warmup.enable_all_batch_sizes_warmup:
        log.warning("%s: model_warmup_options.enable_all_batch_sizes_warmup is not used by this server", WHAT)
    iterations = max(warmup.num_request_iterations.value, 0)   # 0 or less: records read, none replayed
    pools = config.num_tflite_pools
    if pools == 0 and config.num_tflite_interpreters > 0:
        pools = config.num_tflite_interpreters
    return SessionBundleSettings(
        session_target=config.session_target,
        session_config=config.session_config.SerializeToString(),
        batching_parameters=batching,
        enable_per_model_batching_params=batching is not None and config.enable_per_model_batching_params,
        session_run_load_threadpool_index=(config.session_run_load_threadpool_index.value
                                           if config.HasField("session_run_load_threadpool_index") else -1),
        saved_model_tags=tuple(config.saved_model_tags) or ("serve",),
        enable_model_warmup=config.enable_model_warmup,
        num_request_iterations_for_warmup=iterations,
        num_request_iterations_set=warmup.HasField("num_request_iterations"),
        enable_session_metadata=config.enable_session_metadata,
        remove_unused_fields_from_bundle_metagraph=config.remove_unused_fields_from_bundle_metagraph,
        prefer_tflite_model=config.prefer_tflite_model,
        num_tflite_pools=max(pools, 1),
        num_tflite_interpreters_per_pool=max(config.num_tflite_interpreters_per_pool, 1),
        enable_saved_model_config=config.enable_saved_model_config,
        mixed_precision=config.mixed_precision,
    )
