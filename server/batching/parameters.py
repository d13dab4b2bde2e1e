"""TF Serving's batching parameters: `--batching_parameters_file` and a version's `batching_params.pbtxt`.

A `tensorflow.serving.BatchingParameters` message in protobuf text format. The message is defined in
TF Serving's `session_bundle_config.proto`, which the tensorflow-serving-api wheel does not ship, so
the message class is built (textproto.message_classes) from a descriptor with the same package, names,
numbers and types; protobuf's own `text_format` parses the file, so unknown fields and bad syntax fail
with protobuf's messages. Defaults and checks follow TF Serving (SharedBatchScheduler::QueueOptions,
bundle_factory_util.h, batching_session.cc).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from google.protobuf import wrappers_pb2

from .. import textproto
from ..config import ConfigError

_OPT, _REP = textproto.OPTIONAL, textproto.REPEATED
_I64, _STR, _BOOL = ".google.protobuf.Int64Value", ".google.protobuf.StringValue", ".google.protobuf.BoolValue"
# (name, number, label, type, wrapper type) as in TF Serving's BatchingParameters.
_FIELDS = [
    ("max_batch_size", 1, _OPT, textproto.MESSAGE, _I64),
    ("batch_timeout_micros", 2, _OPT, textproto.MESSAGE, _I64),
    ("max_enqueued_batches", 3, _OPT, textproto.MESSAGE, _I64),
    ("num_batch_threads", 4, _OPT, textproto.MESSAGE, _I64),
    ("thread_pool_name", 5, _OPT, textproto.MESSAGE, _STR),
    ("allowed_batch_sizes", 6, _REP, textproto.INT64, None),
    ("pad_variable_length_inputs", 7, _OPT, textproto.BOOL, None),
    ("enable_large_batch_splitting", 8, _OPT, textproto.MESSAGE, _BOOL),
    ("max_execution_batch_size", 9, _OPT, textproto.MESSAGE, _I64),
]

BatchingParametersProto = textproto.message_classes(
    "tensorflow_serving/servables/tensorflow/session_bundle_config.proto", "tensorflow.serving",
    {"BatchingParameters": _FIELDS}, dependencies=[wrappers_pb2.DESCRIPTOR])["BatchingParameters"]

# A version folder's own parameters, read with --enable_per_model_batching_parameters.
PER_MODEL_FILE = "batching_params.pbtxt"

# TF Serving's defaults for fields the file leaves out (SharedBatchScheduler::QueueOptions,
# SharedBatchScheduler::Options; num_batch_threads defaults to port::MaxParallelism()).
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_THREAD_POOL_NAME = "batch_threads"


class BatchingConfigError(ValueError):
    """A batching parameters file that cannot be used; the message says why (for the CLI)."""


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = 0          # 0: one per CPU, as TF Serving
    thread_pool_name: str = DEFAULT_THREAD_POOL_NAME
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0   # 0: max_batch_size

    def __post_init__(self):
        if self.num_batch_threads == 0:
            object.__setattr__(self, "num_batch_threads", os.cpu_count() or 1)
        if self.max_execution_batch_size == 0 or not self.enable_large_batch_splitting:
            # Without splitting TF Serving batches up to the input limit.
            object.__setattr__(self, "max_execution_batch_size", self.max_batch_size)
        object.__setattr__(self, "allowed_batch_sizes", tuple(int(s) for s in self.allowed_batch_sizes))
        self._validate()

    def _validate(self) -> None:
        def fail(msg):
            raise BatchingConfigError(msg)

        if self.num_batch_threads < 1:
            fail(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.max_batch_size < 1:
            fail(f"max_batch_size must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            fail(f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}")
        if self.max_enqueued_batches < 0 or (self.max_enqueued_batches == 0 and self.enable_large_batch_splitting):
            fail(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
        if self.max_execution_batch_size < 1:
            fail(f"max_execution_batch_size must be positive; was {self.max_execution_batch_size}")
        if self.enable_large_batch_splitting and self.max_batch_size < self.max_execution_batch_size:
            fail("When enable_large_batch_splitting is true, input_batch_size_limit must be greater than "
                 f"or equal to max_execution_batch_size (max_batch_size={self.max_batch_size}, "
                 f"max_execution_batch_size={self.max_execution_batch_size})")
        sizes = self.allowed_batch_sizes
        if sizes:
            if sizes[-1] != self.max_batch_size:
                fail("Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                     f"{sizes[-1]}; expected {self.max_batch_size}")
            if sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:])):
                fail(f"allowed_batch_sizes entries must be positive and monotonically increasing; got {list(sizes)}")
        if self.pad_variable_length_inputs:
            fail("pad_variable_length_inputs is not supported by this server; requests whose inputs differ "
                 "beyond the batch dimension are batched separately instead")

    @property
    def effective_max_enqueued_batches(self) -> int:
        # SharedBatchScheduler::AddQueue rewrites 0 to 1 when splitting is off.
        return self.max_enqueued_batches or 1

    @classmethod
    def from_proto(cls, msg) -> "BatchingParameters":
        kwargs = {}
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                     "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"):
            if msg.HasField(name):
                kwargs[name] = getattr(msg, name).value
        kwargs["allowed_batch_sizes"] = tuple(msg.allowed_batch_sizes)
        kwargs["pad_variable_length_inputs"] = msg.pad_variable_length_inputs
        if kwargs.get("num_batch_threads") == 0:
            raise BatchingConfigError("num_batch_threads must be positive; was 0")
        if kwargs.get("max_batch_size") == 0:
            raise BatchingConfigError("max_batch_size must be positive; was 0")
        if "max_execution_batch_size" in kwargs and kwargs["max_execution_batch_size"] == 0:
            raise BatchingConfigError("max_execution_batch_size must be positive; was 0")
        return cls(**kwargs)

    @classmethod
    def from_text(cls, text: str, source: str = "<batching parameters>") -> "BatchingParameters":
        msg = textproto.parse(text, BatchingParametersProto(), f"Invalid protobuf file: '{source}': ",
                              BatchingConfigError)
        return cls.from_proto(msg)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BatchingParameters":
        return cls.from_text(textproto.read_text(path, "batching parameters", BatchingConfigError), str(path))

    def to_proto(self):
        msg = BatchingParametersProto()
        msg.max_batch_size.value = self.max_batch_size
        msg.batch_timeout_micros.value = self.batch_timeout_micros
        msg.max_enqueued_batches.value = self.max_enqueued_batches
        msg.num_batch_threads.value = self.num_batch_threads
        msg.thread_pool_name.value = self.thread_pool_name
        msg.allowed_batch_sizes.extend(self.allowed_batch_sizes)
        msg.pad_variable_length_inputs = self.pad_variable_length_inputs
        if self.enable_large_batch_splitting:
            msg.enable_large_batch_splitting.value = True
            msg.max_execution_batch_size.value = self.max_execution_batch_size
        return msg


def read_parameters(path: str | os.PathLike | None) -> BatchingParameters:
    """`--batching_parameters_file` (or TF Serving's defaults without one); bad files raise ConfigError."""
    try:
        if path is None:
            return BatchingParameters()
        return BatchingParameters.from_file(path)
    except BatchingConfigError as e:
        raise ConfigError(str(e)) from None


def per_model_parameters(version_path: str, global_params: BatchingParameters) -> BatchingParameters | None:
    """A version folder's `batching_params.pbtxt` (--enable_per_model_batching_parameters), or None.

    As TF Serving: the file's values replace the global ones, except the batch threads' pool (its
    size and name), which stays the global file's. Raises BatchingConfigError for a bad file.
    """
    path = os.path.join(version_path, PER_MODEL_FILE)
    if not os.path.isfile(path):
        return None
    params = BatchingParameters.from_file(path)
    return dataclasses.replace(params, num_batch_threads=global_params.num_batch_threads,
                               thread_pool_name=global_params.thread_pool_name)
