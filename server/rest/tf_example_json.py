"""classify and regress over REST: JSON examples -> serialized tf.train.Example, outputs -> JSON results.

As TF Serving (util/json_tensor.cc: FillClassificationRequestFromJson, MakeJsonFromClassificationResult,
and their regression twins):
- every example becomes a tf.train.Example (integers and booleans -> int64_list, decimals ->
  float_list, strings and {"b64": ...} -> bytes_list, a list -> the values of one feature);
- with "context", every example is fed after the serialized context (tf_example.with_context);
- classify answers {"results": [[[label, score], ...], ...]}, regress {"results": [value, ...]}.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2

from ..errors import ServingError, invalid_argument
from ..tf_example import CLASSES, REGRESS_OUTPUTS, SCORES, Examples, check_classify_outputs, check_regress_outputs
from .json_values import b64_decode, format_error
from .json_writer import float_texts, json_string, json_type, to_bytes, value_to_string

# ---------------------------------------------------------------- request

def decode_examples(doc: dict) -> Examples:
    """The request's examples and context, each serialized; the core merges them (tf_example.Examples)
    once it has found the model and signature and checked its limits, as TF Serving does.

    Raises INVALID_ARGUMENT with TF Serving's messages: "Example must be JSON object but got JSON
    <type>", "... key 'examples' is expected and was not found", "Expecting 'examples' value to be an
    list/array", "'examples' value is an empty array", "Feature: f has element with unexpected JSON
    type: Null", "Unexpected element type in feature: f expecting type: int64", "Feature: f has uint64_t
    element. Only int64_t is supported.", "Unable to base64 decode".
    """
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {value_to_string(doc)} Is not object")
    context = make_example(doc["context"]) if "context" in doc else None
    if "examples" not in doc:
        raise format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    items = doc["examples"]
    if not isinstance(items, list):
        raise format_error(doc, "Expecting 'examples' value to be an list/array")
    if not items:
        raise format_error(doc, "'examples' value is an empty array")
    serialized = [make_example(e).SerializeToString(deterministic=True) for e in items]
    return Examples(serialized, None if context is None else context.SerializeToString(deterministic=True))


def make_example(val: Any) -> example_pb2.Example:
    """One JSON object -> tf.train.Example (TF Serving's MakeExampleFromJsonObject)."""
    if not isinstance(val, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(val)}")
    example = example_pb2.Example()
    for name, content in val.items():
        kind: str | None = None
        values: list = []
        for v in (content if isinstance(content, list) else [content]):
            kind = _add_value(v, name, kind, values)
        feature = feature_pb2.Feature()
        if kind == "bytes":
            feature.bytes_list.value.extend(values)
        elif kind == "float":
            feature.float_list.value.extend(values)
        elif kind == "int64":
            feature.int64_list.value.extend(values)
        try:
            entry = example.features.feature[name]
        except UnicodeEncodeError:  # invalid UTF-8 in the request, or a lone \udc00-\udfff escape
            raise invalid_argument(f"Feature name is not valid UTF-8: {ascii(name)}") from None
        entry.CopyFrom(feature)
    return example


def _unexpected(name: str, v: Any) -> ServingError:
    return invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(v)}")


def _want(kind: str | None, wanted: str, name: str) -> str:
    if kind is not None and kind != wanted:
        raise invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")
    return wanted


def _add_value(v: Any, name: str, kind: str | None, values: list) -> str | None:
    """TF Serving's AddValueToFeature: the feature's kind after adding `v` to `values`."""
    t = type(v)
    if v is None or t is list:
        raise _unexpected(name, v)
    if t is bool:
        kind = _want(kind, "int64", name)
        values.append(1 if v else 0)
    elif t is dict:
        if not (len(v) == 1 and isinstance(v.get("b64"), str)):
            raise _unexpected(name, v)
        kind = _want(kind, "bytes", name)
        try:
            values.append(b64_decode(v["b64"]))
        except (ValueError, UnicodeEncodeError):
            raise invalid_argument("Unable to base64 decode") from None
    elif t is str:
        kind = _want(kind, "bytes", name)
        values.append(to_bytes(v))
    elif t is float or (t is int and not -(1 << 63) <= v < (1 << 64)):
        kind = _want(kind, "float", name)
        values.append(float(v))  # GetFloat: the protobuf float field casts as C does (beyond FLT_MAX: inf)
    elif t is int:
        kind = _want(kind, "int64", name)
        if v >= (1 << 63):
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        values.append(v)
    else:
        raise _unexpected(name, v)
    return kind


# ---------------------------------------------------------------- response

def _batch_of(outputs: dict[str, np.ndarray], keys: tuple[str, ...]) -> int:
    for k in keys:
        if k in outputs:
            arr = np.asarray(outputs[k])
            return arr.shape[0] if arr.ndim else 0
    return 0


def encode_classify(outputs: dict[str, np.ndarray], num_examples: int | None = None) -> bytes:
    """{"results": [[[label, score], ...], ...]} as TF Serving writes it (label "" without "classes",
    score 0.0 without "scores"). Checks the outputs first (check_classify_outputs)."""
    if num_examples is None:
        num_examples = _batch_of(outputs, (CLASSES, SCORES))
    found = check_classify_outputs(outputs, num_examples)
    if num_examples == 0:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    classes, scores = found.get(CLASSES), found.get(SCORES)
    num_classes = (classes if classes is not None else found[SCORES]).shape[1]  # found has one of them
    labels = ([json_string(x if isinstance(x, (bytes, str)) else str(x)) for x in classes.reshape(-1).tolist()]
              if classes is not None else ['""'] * (num_examples * num_classes))
    if scores is not None:
        values = float_texts(scores.reshape(-1).astype(np.float32, copy=False), single=True)
    else:
        values = ["0.0"] * (num_examples * num_classes)
    rows = []
    for i in range(num_examples):
        base = i * num_classes
        rows.append("[" + ", ".join("[" + labels[base + c] + ", " + values[base + c] + "]"
                                    for c in range(num_classes)) + "]")
    return to_bytes('{\n    "results": [' + ", ".join(rows) + "\n    ]\n}")


def encode_regress(outputs: dict[str, np.ndarray], num_examples: int | None = None) -> bytes:
    """{"results": [value, ...]} as TF Serving writes it. Checks the output first."""
    if num_examples is None:
        num_examples = _batch_of(outputs, (REGRESS_OUTPUTS,))
    arr = check_regress_outputs(outputs, num_examples)[REGRESS_OUTPUTS]
    if num_examples == 0:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = float_texts(arr.reshape(-1).astype(np.float32, copy=False), single=True)
    return ('{\n    "results": [' + ", ".join(values) + "]\n}").encode()
