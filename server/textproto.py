"""Reading the protobuf text-format files that the flags name, in one place.

`--model_config_file` (ModelServerConfig), `--batching_parameters_file` and a version's
`batching_params.pbtxt` (BatchingParameters), `--monitoring_config_file` (MonitoringConfig),
`--ssl_config_file` (SSLConfig), `--platform_config_file` (PlatformConfigMap),
`--tensorflow_session_config_file` (TensorFlow's ConfigProto) and
`--thread_pool_factory_config_file` (ThreadPoolFactoryConfig) are all read with `read_text`
and parsed with `parse`; syntax errors are reported as TF Serving's C++ parser reports them:
"Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type ...".

Messages that the tensorflow-serving-api wheel does not ship are built here by `message_class`
from a descriptor with TF Serving's package, names, numbers and types, in a private pool (never
clashing with a real `*_pb2` module imported elsewhere); protobuf's own `text_format` parses them.
"""
from __future__ import annotations

import os
import re

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
BOOL, INT32, INT64, STRING, MESSAGE = _F.TYPE_BOOL, _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_STRING, _F.TYPE_MESSAGE
UINT64 = _F.TYPE_UINT64


class TextProtoError(ValueError):
    """A text-format file that cannot be read or parsed; the message is one sentence for the CLI."""

    @property
    def message(self) -> str:
        return str(self)


def message_classes(proto_file: str, package: str, messages: dict, dependencies=()) -> dict:
    """Message classes built from a descriptor: {message name: class}.

    `messages`: {name: [(field, number, label, type, type_name or None), ...]}; `dependencies`:
    file descriptors (e.g. `wrappers_pb2.DESCRIPTOR`) that the fields' type names refer to (their
    own dependencies are added too). The classes' pool is `cls.DESCRIPTOR.file.pool`.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(dep) -> None:
        if dep.name in added:
            return
        for inner in dep.dependencies:
            add(inner)
        fdp = descriptor_pb2.FileDescriptorProto()
        dep.CopyToProto(fdp)
        pool.Add(fdp)
        added.add(dep.name)

    names = []
    for dep in dependencies:
        add(dep)
        names.append(dep.name)
    fdp = descriptor_pb2.FileDescriptorProto(name=proto_file, package=package, syntax="proto3",
                                             dependency=names)
    for name, fields in messages.items():
        msg = fdp.message_type.add(name=name)
        for field_name, number, label, ftype, type_name in fields:
            field = msg.field.add(name=field_name, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}


def read_text(path: str | os.PathLike, what: str, error: type[Exception] = TextProtoError) -> str:
    """The text of a file that a flag names (`what`, e.g. "model config"); an unreadable or
    non-UTF-8 file raises `error` with one sentence naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise error(f"Cannot read {what} file '{path}': {e.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"Invalid protobuf file: '{path}': not UTF-8 text") from None


class AnyTypes:
    """Where an Any written as `[type.googleapis.com/NAME] { ... }` finds NAME's message type: in
    `pools` in turn (e.g. a private pool of message_classes, then protobuf's default pool), as a
    binary with those types compiled in would. Pass as `parse(..., descriptor_pool=AnyTypes(...))`."""

    def __init__(self, *pools):
        self.pools = pools

    def FindMessageTypeByName(self, name: str):  # the one method protobuf's text_format calls
        for pool in self.pools:
            try:
                return pool.FindMessageTypeByName(name)
            except KeyError:
                continue
        raise KeyError(name)


_UNKNOWN_ANY = re.compile(r"^Type (\S+) not found in descriptor pool$")


def parse_error_text(message, exc: text_format.ParseError) -> str:
    """TF Serving's wording for a syntax error: "Error parsing text-format <type>: <line>:<col>: <what>"."""
    detail = str(exc)
    unknown = _UNKNOWN_ANY.match(detail)
    if unknown:  # the C++ parser's words for an Any of a type it does not have
        detail = f'Could not find type "type.googleapis.com/{unknown.group(1)}" stored in google.protobuf.Any.'
    line, column = exc.GetLine(), exc.GetColumn()
    if line is not None and column is not None:
        prefix = f"{line}:{column} : "
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
        detail = f"{line}:{column}: {detail}"
    return f"Error parsing text-format {message.DESCRIPTOR.full_name}: {detail}"


def parse(text: str, message, prefix: str, error: type[Exception] = TextProtoError, descriptor_pool=None):
    """Parse `text` into `message` (a fresh message object) and return it.

    A syntax error or an unknown field raises `error` whose text is `prefix` followed by TF
    Serving's wording, e.g. "Invalid protobuf file: 'f.txt': Error parsing text-format ...".
    `descriptor_pool`: where expanded Any values find their types (default: protobuf's default pool).
    """
    try:
        text_format.Parse(text, message, descriptor_pool=descriptor_pool)
    except text_format.ParseError as e:
        raise error(f"{prefix}{parse_error_text(message, e)}") from None
    return message


def read(path: str | os.PathLike, message, what: str, error: type[Exception] = TextProtoError,
         prefix: str | None = None, descriptor_pool=None):
    """`read_text` then `parse`; the prefix defaults to TF Serving's "Invalid protobuf file: '<path>': "."""
    text = read_text(path, what, error)
    return parse(text, message, f"Invalid protobuf file: '{path}': " if prefix is None else prefix, error,
                 descriptor_pool)
