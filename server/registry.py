"""TF Serving's class registries for config files that hold a google.protobuf.Any.

Two flags name such files: `--platform_config_file` (each platform's `source_adapter_config` names a
registered StoragePathSourceAdapter: tensorflow_model_server registers one,
SavedModelBundleSourceAdapterConfig) and `--thread_pool_factory_config_file` (its
`thread_pool_factory_config` names a registered ThreadPoolFactory: tensorflow_model_server registers
none). `create_from_any` follows TF Serving's ClassRegistry::CreateFromAny
(util/class_registration.h) step by step, with its messages: the type URL is parsed, the type must be
one the server has compiled in, the value must decode as that type, and a factory must be registered
for it; every failure stops the server before it starts (StartError: the CLI prints TF Serving's
"Failed to start server. Error: CODE: message" and exits with its status, 255).
"""
from __future__ import annotations

from typing import Callable

from google.protobuf import descriptor_pool as descriptor_pool_mod
from google.protobuf import message_factory, text_format

from .config import ConfigError, StartError  # noqa: F401 - StartError: registry's errors, defined in config


class RegistryError(StartError):
    """A config Any that no registered factory takes; `code` is TF Serving's status code."""


def _debug_string(message) -> str:
    # C++ Message::DebugString(): the text format, one field per line, an Any's value as its bytes.
    return text_format.MessageToString(message, descriptor_pool=descriptor_pool_mod.DescriptorPool())


def create_from_any(any_config, factories: dict[str, Callable], types=None):
    """`factories[type](config)` for the message an Any holds; RegistryError with TF Serving's message
    when it cannot be made. `types`: where message types are found (anything with
    FindMessageTypeByName, e.g. textproto.AnyTypes); protobuf's default pool by default."""
    type_url = any_config.type_url
    parts = type_url.split("/")
    if len(parts) < 2 or not parts[-1]:
        raise RegistryError("INVALID_ARGUMENT", f"Supplied config's type_url could not be parsed: {type_url}")
    full_name = parts[-1]
    types = types if types is not None else descriptor_pool_mod.Default()
    try:
        descriptor = types.FindMessageTypeByName(full_name)
    except KeyError:
        raise RegistryError("INTERNAL", f"Unable to find compiled-in proto descriptor of type {full_name}") from None
    config = message_factory.GetMessageClass(descriptor)()
    try:
        config.ParseFromString(any_config.value)
    except Exception:  # protobuf's DecodeError
        raise RegistryError("INVALID_ARGUMENT", f"Malformed content of Any: {_debug_string(any_config)}") from None
    factory = factories.get(full_name)
    if factory is None:
        raise RegistryError("INVALID_ARGUMENT", f"Couldn't find factory for config proto message type {full_name}"
                                                f"\nconfig={_debug_string(config)}")
    return factory(config)
