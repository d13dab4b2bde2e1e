"""A SignatureDef, read once into plain Python: what the codec and the validator need to know.

The official `SignatureDef` proto stays attached (`Signature.proto`) for the metadata API;
everything on the request path reads these small frozen dataclasses instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from .errors import ServingError, SignatureNotFound

DEFAULT_SIGNATURE = "serving_default"  # the signature a request without "signature_name" runs
# TF2 exports carry this entry in their signature map: it is the variables' init op, not a
# callable signature; it stays in the metadata (as in TF Serving) but cannot be run.
INIT_OP_SIGNATURE = "__saved_model_init_op"

# DataType enum -> numpy dtype for the types a JSON request can carry.
# DT_STRING maps to object (Python bytes); DT_HALF/DT_BFLOAT16 are fed as float32 and cast by TF.
NUMPY_DTYPES: dict[int, np.dtype] = {
    types_pb2.DT_FLOAT: np.dtype(np.float32),
    types_pb2.DT_DOUBLE: np.dtype(np.float64),
    types_pb2.DT_HALF: np.dtype(np.float16),
    types_pb2.DT_INT8: np.dtype(np.int8),
    types_pb2.DT_INT16: np.dtype(np.int16),
    types_pb2.DT_INT32: np.dtype(np.int32),
    types_pb2.DT_INT64: np.dtype(np.int64),
    types_pb2.DT_UINT8: np.dtype(np.uint8),
    types_pb2.DT_UINT16: np.dtype(np.uint16),
    types_pb2.DT_UINT32: np.dtype(np.uint32),
    types_pb2.DT_UINT64: np.dtype(np.uint64),
    types_pb2.DT_BOOL: np.dtype(np.bool_),
    types_pb2.DT_STRING: np.dtype(object),
}


def dtype_name(dtype_enum: int) -> str:
    """'DT_FLOAT' -> 'float', as TF Serving's messages spell types."""
    return types_pb2.DataType.Name(dtype_enum)[3:].lower()


def tf_type_name(dtype: np.dtype) -> str:
    """The TF name ('float', 'int64', 'string') of a numpy dtype; numpy's own name when TF has none here."""
    if dtype.kind in "OSU":
        return "string"
    for enum, np_dtype in NUMPY_DTYPES.items():
        if np_dtype == dtype and enum != types_pb2.DT_STRING:
            return dtype_name(enum)
    return dtype.name


def shape_text(dims) -> str:
    """A shape as TF Serving's messages print it (TensorShape::DebugString): [-1,28,28,1]."""
    return "[" + ",".join(str(d) for d in dims) + "]"


@dataclass(frozen=True)
class TensorSpec:
    key: str                      # the signature's input/output key, e.g. "x"
    tensor_name: str              # the graph tensor, e.g. "x:0"
    dtype: int                    # a types_pb2.DataType value, e.g. types_pb2.DT_FLOAT
    shape: tuple[int, ...] | None  # None: unknown rank; -1: a dimension of any size
    # The dtype the model's tensor takes, where it differs from the declared one (a TF1 graph may
    # declare a signature that contradicts its own tensors): TensorFlow checks fed tensors against
    # this one. None: the declared dtype.
    model_dtype: int | None = None

    @property
    def np_dtype(self) -> np.dtype:
        found = NUMPY_DTYPES.get(self.dtype)
        return found if found is not None else np.dtype(object)

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    def shape_text(self) -> str:
        """The declared shape as a person reads it: [-1,28,28,1] or <unknown rank>."""
        if self.shape is None:
            return "<unknown rank>"
        return shape_text(self.shape)

    @classmethod
    def from_proto(cls, key: str, info: meta_graph_pb2.TensorInfo) -> "TensorSpec":
        shp = info.tensor_shape
        shape = None if shp.unknown_rank else tuple(int(d.size) for d in shp.dim)
        return cls(key=key, tensor_name=info.name, dtype=int(info.dtype), shape=shape)


@dataclass(frozen=True)
class Signature:
    name: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    proto: meta_graph_pb2.SignatureDef = field(compare=False, repr=False)

    @classmethod
    def from_proto(cls, name: str, sig: meta_graph_pb2.SignatureDef) -> "Signature":
        # Keys are sorted, as TF Serving iterates the proto map in key order.
        return cls(
            name=name,
            method_name=sig.method_name,
            inputs={k: TensorSpec.from_proto(k, sig.inputs[k]) for k in sorted(sig.inputs)},
            outputs={k: TensorSpec.from_proto(k, sig.outputs[k]) for k in sorted(sig.outputs)},
            proto=sig,
        )


PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


_API_OF_METHOD = {PREDICT_METHOD: "predict", CLASSIFY_METHOD: "classify", REGRESS_METHOD: "regress"}


def check_method_name(signature: Signature, api: str, enabled: bool = True) -> None:
    """--enable_signature_method_name_check: with it on, as in TF Serving, Predict runs only
    signatures whose method_name is predict, classify or regress (INTERNAL otherwise, as
    predict_util.cc), Classify only classify signatures and Regress only regress signatures
    (INVALID_ARGUMENT, as classifier.cc / regressor.cc). Off (TF Serving's default): no check, so
    that native TF2 models, whose signatures all say predict, can be classified and regressed.

    api: the API called, "predict", "classify" or "regress", or its method name
    ("tensorflow/serving/predict"...): DataPlane(check_method_name=check_method_name) when the flag is on.
    """
    if not enabled:
        return
    api = _API_OF_METHOD.get(api, api)
    method = signature.method_name
    if api == "predict":
        if method not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError("INTERNAL", "Expected prediction signature method_name to be one of {"
                                           f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {method}")
    elif api == "classify":
        if method != CLASSIFY_METHOD:
            raise ServingError("INVALID_ARGUMENT",
                               f"Expected classification signature method_name to be {CLASSIFY_METHOD}. Was: {method}")
    elif api == "regress":
        if method != REGRESS_METHOD:
            raise ServingError("INVALID_ARGUMENT",
                               f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: {method}")
    else:
        raise ValueError(f"unknown API {api!r}")


def get_signature(signatures: dict[str, Signature], name: str) -> Signature:
    sig = signatures.get(name)
    if sig is None:
        raise SignatureNotFound(name)
    return sig


def signatures_only(meta_graph):
    """--remove_unused_fields_from_bundle_metagraph: keep only the SignatureDefs (memory)."""
    kept = meta_graph_pb2.MetaGraphDef()
    for key, sig in meta_graph.signature_def.items():
        kept.signature_def[key].CopyFrom(sig)
    return kept
