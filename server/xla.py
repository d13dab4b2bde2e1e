"""XLA JIT compilation on or off for a whole serving process, as tensorflow_model_server's main() sets it.

tensorflow_model_server calls `tensorflow::DisableXlaCompilation()` before it starts unless
`--xla_cpu_compilation_enabled` or `--xla_gpu_compilation_enabled` is given (model_servers/main.cc).
TensorFlow then refuses to compile anything with XLA: a model whose functions must be compiled
(`tf.function(jit_compile=True)`) answers every request with INTERNAL "XLA compilation disabled".
With either flag nothing is changed: such functions are compiled with XLA on first use
(TensorFlow logs "Compiled cluster using XLA!"). Models that do not ask for XLA run the same either way.

TensorFlow's Python API has no call for this switch, so `configure` calls the same C++ function,
which libtensorflow_cc exports, through ctypes. It is process-wide: call it in a serving process
before models load (worker.start_worker_process, worker.serve_in_process), never in a process that also trains.
"""
from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("server")

# tensorflow::DisableXlaCompilation() (tensorflow/compiler/jit/flags.h), as the linker names it.
DISABLE_SYMBOL = "_ZN10tensorflow21DisableXlaCompilationEv"
LIBRARY = "libtensorflow_cc.so.2"


def enabled(options) -> bool:
    """Whether the flags leave XLA compilation on (options: the server's Options)."""
    return bool(options.xla_cpu_compilation_enabled or options.xla_gpu_compilation_enabled)


def configure(options) -> bool:
    """Turn XLA compilation off in this process unless a flag enables it; returns whether it is off."""
    if enabled(options):
        return False
    return disable_xla_compilation()


def disable_xla_compilation() -> bool:
    """Call TensorFlow's DisableXlaCompilation(); False (and a warning) when this TensorFlow has none."""
    import tensorflow as tf
    path = os.path.join(os.path.dirname(tf.__file__), LIBRARY)
    try:
        disable = getattr(ctypes.CDLL(path), DISABLE_SYMBOL)
    except (OSError, AttributeError) as exc:
        log.warning("Cannot turn XLA compilation off in this TensorFlow (%s): models that ask for XLA are "
                    "compiled as with --xla_cpu_compilation_enabled", exc)
        return False
    disable.restype = None
    disable.argtypes = []
    disable()
    return True
