"""Dynamic batching: the parameters file (parameters.py), the scheduler (scheduler.py) and the
per-version batchers of a server (pool.py)."""
from .parameters import BatchingConfigError, BatchingParameters, BatchingParametersProto, read_parameters
from .pool import BatcherPool, batchable
from .scheduler import Batcher

__all__ = ["Batcher", "BatcherPool", "BatchingConfigError", "BatchingParameters", "BatchingParametersProto",
           "batchable", "read_parameters"]
