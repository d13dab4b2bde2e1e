"""Inputs checked against the signature before the model runs, and explained when the model fails.

TF Serving checks only which inputs a request names (predict_util.cc: VerifyRequestInputsSize, then
TensorFlow's saved_model::GetInputValues) and feeds the tensors into the session without comparing
them with the shapes the signature declares; TensorFlow then refuses a tensor of the wrong dtype.
This module refuses exactly those requests, before the model runs, with TF Serving's messages (the
dtype message names the input, what the signature declares and what arrived). A shape the
signature does not declare is never refused here: many models take it (a TF1 graph's declared
shapes are often only inferred; a Placeholder is fed whatever arrives). When the model then fails,
`explain_failure` adds to TensorFlow's message which inputs did not match their declared shape.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tensorflow.core.framework import types_pb2

from .errors import ServingError, invalid_argument
from .signatures import NUMPY_DTYPES, Signature, TensorSpec, dtype_name, shape_text, tf_type_name


def validate_inputs(inputs: Mapping[str, np.ndarray], signature: Signature) -> None:
    """Raise INVALID_ARGUMENT where TF Serving refuses the request before or while feeding it: too many
    inputs, a declared input missing without a default in the SignatureDef, an undeclared input, or
    an array whose dtype is not the one the model takes."""
    declared = signature.inputs
    if len(inputs) == 1 == len(declared):  # the common case, checked without building sets
        (key, value), = inputs.items()
        spec = declared.get(key)
        if spec is not None:
            check_dtype(key, value, spec)
            return
    _check_names(inputs, signature)
    for key in sorted(inputs):
        check_dtype(key, inputs[key], declared[key])


def _check_names(inputs: Mapping, signature: Signature) -> None:
    sent, names = set(inputs), set(signature.inputs)
    defaults = defaults_of(signature)
    if len(sent) > len(names) or (len(sent) < len(names) and not defaults):
        # predict_util.cc: VerifyRequestInputsSize
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(names)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(names))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - names))}}}. "
            f"Missing but required: {{{','.join(sorted(names - sent))}}}."
        )
    # tensorflow/cc/saved_model/util.cc: GetInputValues
    for key in sorted(names - sent):
        if key not in defaults:
            raise invalid_argument(
                f"Signature input alias: {key}(feed name: {signature.inputs[key].tensor_name}) not found in "
                f"request and no default value provided. Inputs expected to be in the request "
                f"{{{','.join(sorted(sent))}}}, or default input alias set: {','.join(sorted(defaults))}"
            )
    if sent - names:
        raise invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {','.join(sorted(sent & names))}, "
            f"request input: {','.join(sorted(sent))}"
        )


def defaults_of(signature: Signature) -> dict:
    """The SignatureDef's default values (input key -> TensorProto); TF Serving feeds them for inputs
    a request leaves out."""
    proto = getattr(signature, "proto", None)
    try:
        return dict(proto.defaults) if proto is not None else {}
    except AttributeError:  # protos older than the `defaults` field
        return {}


def check_dtype(key: str, value: np.ndarray, spec: TensorSpec) -> None:
    """One input's dtype against the dtype the model takes (TensorFlow refuses any other)."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if _dtype_ok(arr, spec):
        return
    got_type = array_type_name(arr)
    takes = spec.model_dtype if spec.model_dtype is not None else spec.dtype
    also = "" if takes == spec.dtype else f", though the model's tensor {spec.tensor_name} takes {dtype_name(takes)}"
    raise invalid_argument(
        f"Input '{key}': value of type {got_type} is not of expected type: {dtype_name(takes)} "
        f"(the signature declares {spec.dtype_name} with shape {spec.shape_text()}{also}; "
        f"got {got_type} with shape {shape_text(arr.shape)})"
    )


def _dtype_ok(arr: np.ndarray, spec: TensorSpec) -> bool:
    takes = spec.model_dtype if spec.model_dtype is not None else spec.dtype
    if takes == types_pb2.DT_STRING:
        return arr.dtype.kind in "OSU"
    want = NUMPY_DTYPES.get(takes)
    if want is None:  # a type JSON cannot carry (bfloat16, complex...): nothing to compare with
        return True
    return arr.dtype == want


def shape_mismatch(key: str, arr: np.ndarray, spec: TensorSpec) -> str | None:
    """Why `arr` does not have the shape the signature declares for `key`, or None when it has."""
    if spec.shape is None:
        return None
    got = shape_text(arr.shape)
    declares = f"the signature declares {spec.dtype_name} with shape {spec.shape_text()}"
    if arr.ndim != len(spec.shape):
        return (f"Input '{key}': Expecting shape {spec.shape_text()} but got: {got} "
                f"({declares}: rank {len(spec.shape)}, got rank {arr.ndim})")
    for i, (want, have) in enumerate(zip(spec.shape, arr.shape)):
        if want >= 0 and want != have:
            return (f"Input '{key}': Expecting shape {spec.shape_text()} but got: {got} "
                    f"({declares}: dimension {i} must be {want}, got {have}; -1 means any size)")
    return None


_MAX_LISTED = 8


def explain_failure(error: ServingError, inputs: dict[str, np.ndarray], signature: Signature) -> ServingError:
    """The model failed on `inputs`: the same status, its message followed by the inputs that did not
    match their declared shape (or, when all did, every input: declared dtype and shape, and what
    arrived), so that the client learns what the model expected."""
    notes = []
    for key in sorted(inputs):
        spec = signature.inputs.get(key)
        if spec is not None:
            why = shape_mismatch(key, np.asarray(inputs[key]), spec)
            if why:
                notes.append(why)
    if not notes:
        for key in sorted(inputs)[:_MAX_LISTED]:
            spec, arr = signature.inputs.get(key), np.asarray(inputs[key])
            if spec is not None:
                notes.append(f"Input '{key}': the signature declares {spec.dtype_name} with shape "
                             f"{spec.shape_text()}; got {array_type_name(arr)} with shape {shape_text(arr.shape)}")
    if not notes:
        return error
    return ServingError(error.code, f"{error.message.rstrip()} [{'; '.join(notes)}]")


def array_type_name(arr: np.ndarray) -> str:
    """The TF name ('float', 'int64', 'string') of a numpy array's dtype."""
    return tf_type_name(arr.dtype)
