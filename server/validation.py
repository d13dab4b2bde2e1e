"""Inputs checked against the signature before the model runs.

TF Serving feeds whatever the JSON held and lets TensorFlow fail; here every input is checked first,
so the model is never called with data it cannot take, and the client learns which input is wrong,
what the signature declares and what arrived. Messages keep TF Serving's key phrases
("input size does not match signature", "is not of expected type", "Expecting shape").
"""
from __future__ import annotations

import numpy as np
from tensorflow.core.framework import types_pb2

from .errors import invalid_argument
from .signatures import NUMPY_DTYPES, Signature, TensorSpec, shape_text, tf_type_name


def validate_inputs(inputs: dict[str, np.ndarray], signature: Signature) -> None:
    """Raise INVALID_ARGUMENT unless `inputs` has every declared input (or a default for it), no
    undeclared one, and each array has the declared dtype and a shape the declared shape admits
    (-1: any size; unknown rank: any shape)."""
    declared = signature.inputs
    if len(inputs) == 1 == len(declared):  # the common case, checked without building sets
        (key, value), = inputs.items()
        spec = declared.get(key)
        if spec is not None:
            check_tensor(key, value, spec)
            return
    sent = set(inputs)
    names = set(declared)
    extra = sorted(sent - names)
    missing = sorted(names - sent)
    if extra or (missing and [m for m in missing if m not in _defaults(signature)]):
        # TF Serving's predict_util.cc: VerifyRequestInputsSize
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(names)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(names))}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    for key in sorted(sent):
        check_tensor(key, inputs[key], declared[key])


def _defaults(signature: Signature) -> set[str]:
    proto = getattr(signature, "proto", None)
    try:
        return set(proto.defaults.keys()) if proto is not None else set()
    except AttributeError:  # protos older than the `defaults` field
        return set()


def check_tensor(key: str, value: np.ndarray, spec: TensorSpec) -> None:
    """One input against its TensorSpec: dtype, then rank and every known dimension."""
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    # The names in the messages are built only when there is an error (this runs on every request).
    got_shape = lambda: shape_text(arr.shape)  # noqa: E731
    expected = lambda: f"{spec.dtype_name} with shape {spec.shape_text()}"  # noqa: E731
    if not _dtype_ok(arr, spec):
        got_type = array_type_name(arr)
        raise invalid_argument(
            f"Input '{key}': value of type {got_type} is not of expected type: {spec.dtype_name} "
            f"(the signature declares {expected()}; got {got_type} with shape {got_shape()})"
        )
    if spec.shape is None or not spec.check_shape:
        return
    if arr.ndim != len(spec.shape):
        raise invalid_argument(
            f"Input '{key}': Expecting shape {spec.shape_text()} but got: {got_shape()} "
            f"(the signature declares {expected()}: rank {len(spec.shape)}, got rank {arr.ndim})"
        )
    for i, (want, have) in enumerate(zip(spec.shape, arr.shape)):
        if want >= 0 and want != have:
            raise invalid_argument(
                f"Input '{key}': Expecting shape {spec.shape_text()} but got: {got_shape()} "
                f"(the signature declares {expected()}: dimension {i} must be {want}, got {have}; "
                f"-1 means any size)"
            )


def _dtype_ok(arr: np.ndarray, spec: TensorSpec) -> bool:
    if spec.dtype == types_pb2.DT_STRING:
        return arr.dtype.kind in "OSU"
    want = NUMPY_DTYPES.get(spec.dtype)
    if want is None:  # a type JSON cannot carry (bfloat16, complex...): nothing to compare with
        return True
    return arr.dtype == want


def array_type_name(arr: np.ndarray) -> str:
    """The TF name ('float', 'int64', 'string') of a numpy array's dtype."""
    return tf_type_name(arr.dtype)
