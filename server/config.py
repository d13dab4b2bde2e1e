"""The serving configuration: which models to serve, from where, which versions, which labels.

Built either from the single-model flags (`--model_name`, `--model_base_path`) or from a
`--model_config_file` holding a `ModelServerConfig` in protobuf text format, parsed with the
official protos. Validation follows TF Serving's rules and messages (model_servers/server_core.cc)
where it has them; everything else fails with a message that names the model and the field.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from tensorflow_serving.config import model_server_config_pb2

from . import textproto
from .errors import ServingError

TENSORFLOW_PLATFORM = "tensorflow"


class ConfigError(ServingError):
    """An invalid serving configuration (INVALID_ARGUMENT): the CLI prints it and exits."""

    def __init__(self, message: str):
        super().__init__("INVALID_ARGUMENT", message)


class StartError(ConfigError):
    """A config that tensorflow_model_server refuses in Server::BuildAndStart: main.cc prints
    "Failed to start server. Error: <CODE>: <message>" on stdout and exits 255 (cli.main does the same)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    @classmethod
    def wrap(cls, exc: ConfigError) -> "StartError":
        return exc if isinstance(exc, StartError) else cls(exc.code, exc.message)


# The one log collector this server has (TF Serving's open-source build registers none).
COLLECTOR_TYPE = "tfrecord"


@dataclass(frozen=True)
class LogSettings:
    """A model's LoggingConfig as the logger needs it (`config`: the serialized LoggingConfig)."""
    sampling_rate: float
    filename_prefix: str
    config: bytes


def check_logging_config(model_name: str, config) -> LogSettings:
    """A ModelConfig.logging_config (tensorflow.serving.LoggingConfig) checked (request_log.py writes the
    records); raises StartError as tensorflow_model_server, whose build registers no collector."""
    kind = config.log_collector_config.type
    if kind != COLLECTOR_TYPE:
        raise StartError("NOT_FOUND", f"Cannot find LogCollector::Factory for type: {kind}")
    prefix = config.log_collector_config.filename_prefix
    if not prefix:
        raise StartError("INVALID_ARGUMENT", f"Model {model_name}: log_collector_config of type "
                                             f"{COLLECTOR_TYPE} needs a filename_prefix")
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise StartError("INVALID_ARGUMENT", f"Model {model_name}: sampling_rate must be in [0, 1], got {rate}")
    return LogSettings(rate, prefix, config.SerializeToString(deterministic=True))


@dataclass(frozen=True)
class ModelSettings:
    """One model of the config, validated and in plain Python."""

    name: str
    base_path: str
    policy: str = "latest"                  # "latest", "all" or "specific"
    num_versions: int = 1                   # for "latest"
    versions: frozenset[int] = frozenset()  # for "specific"
    labels: dict[str, int] = field(default_factory=dict)
    logging: LogSettings | None = None      # when the model has a logging_config

    def select(self, available: set[int]) -> set[int]:
        """The versions this policy wants served, out of those found on disk."""
        if self.policy == "all":
            return set(available)
        if self.policy == "specific":
            return set(available) & set(self.versions)
        return set(sorted(available, reverse=True)[: self.num_versions])


def is_version_dir_name(name: str) -> bool:
    return name.isascii() and name.isdigit()


def parse_config_text(text: str, source: str = "<config>") -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig in text format; a syntax error raises ConfigError with TF Serving's wording
    ("Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: ...")."""
    return textproto.parse(text, model_server_config_pb2.ModelServerConfig(),
                           f"Invalid ModelServerConfig in {source}: ", ConfigError)


def read_text_file(path, what: str, error: type[Exception] = ConfigError) -> str:
    """The text of a protobuf text-format file that a flag names (see textproto.read_text)."""
    return textproto.read_text(path, what, error)


def read_config_file(path: str, check_paths: bool = True) -> list[ModelSettings]:
    """Parse and validate a --model_config_file; raises ConfigError."""
    text = read_text_file(path, "model config")
    return settings_from_proto(parse_config_text(text, path), check_paths=check_paths)


def single_model(model_name: str, model_base_path: str, check_paths: bool = True) -> list[ModelSettings]:
    """The config that --model_name/--model_base_path describe (TF Serving builds the same proto)."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = model_base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return settings_from_proto(config, check_paths=check_paths)


def settings_from_proto(config: model_server_config_pb2.ModelServerConfig,
                        check_paths: bool = True) -> list[ModelSettings]:
    """Validate a ModelServerConfig; with check_paths, every base path must be an existing folder."""
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError("The model config must contain a model_config_list "
                          "(custom_model_config is not supported)")
    if not config.model_config_list.config:
        raise ConfigError("The model config lists no models")
    seen: set[str] = set()
    result = []
    for model in config.model_config_list.config:
        if not model.name:
            raise ConfigError("A model in the config has no name")
        if "/" in model.name or ":" in model.name:
            raise ConfigError(f"Model name {model.name!r} must not contain '/' or ':'")
        if model.name in seen:
            raise ConfigError(f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
        result.append(_model_settings(model, check_paths))
    return result


def _model_settings(model, check_paths: bool) -> ModelSettings:
    name = model.name
    if model.model_type != 0:   # the deprecated enum; TENSORFLOW = 1
        if model.model_platform:
            raise ConfigError("Illegal setting both ModelServerConfig::model_type (deprecated) "
                              "and ModelServerConfig::model_platform.")
        platform = TENSORFLOW_PLATFORM if model.model_type == 1 else str(model.model_type)
    else:
        platform = model.model_platform
    if not platform:
        raise ConfigError("Illegal setting neither ModelServerConfig::model_type (deprecated) "
                          f"nor ModelServerConfig::model_platform (model {name}).")
    if platform != TENSORFLOW_PLATFORM:
        raise ConfigError(f"Model {name} requests unsupported platform {platform}")
    if not model.base_path or not os.path.isabs(model.base_path):
        raise ConfigError(f"Expected model {name} to have an absolute path or URI; "
                          f"got base_path()={model.base_path}")
    if check_paths:
        check_base_path(name, model.base_path)

    policy = model.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    num_versions, versions = 1, frozenset[int]()
    if kind == "latest":
        # TF Serving serves at least one version: num_versions 0 (unset) means 1.
        num_versions = max(policy.latest.num_versions, 1)
    elif kind == "specific":
        versions = frozenset(int(v) for v in policy.specific.versions)
        if not versions:
            raise ConfigError(f"Model {name}: model_version_policy specific lists no versions")
        if min(versions) < 0:
            raise ConfigError(f"Model {name}: version numbers must not be negative")

    labels = {str(k): int(v) for k, v in model.version_labels.items()}
    for label, version in sorted(labels.items()):
        if not label or "/" in label or ":" in label:
            raise ConfigError(f"Model {name}: invalid version label {label!r}")
        if version < 0:
            raise ConfigError(f"Model {name}: label {label} points at negative version {version}")
        if kind == "specific" and version not in versions:
            raise ConfigError(f"Model {name}: label {label} points at version {version}, which the "
                              f"specific version policy {sorted(versions)} never serves")
    logging = None
    if model.HasField("logging_config"):
        logging = check_logging_config(name, model.logging_config)
    return ModelSettings(name=name, base_path=model.base_path, policy=kind,
                         num_versions=num_versions, versions=versions, labels=labels, logging=logging)


def check_base_path(name: str, base_path: str) -> None:
    """Refuse a base path that does not exist or holds no version folder (TF Serving's startup check)."""
    if not os.path.isdir(base_path):
        raise ConfigError(f"Could not find base path {base_path} for servable {name}")
    if not any(is_version_dir_name(e.name) and e.is_dir() for e in os.scandir(base_path)):
        raise ConfigError(f"No versions of servable {name} found under base path {base_path}. "
                          "A version is a sub-folder named by a number, e.g. "
                          f"{os.path.join(base_path, '1')}/saved_model.pb")
