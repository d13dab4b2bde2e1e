"""classify and regress: JSON examples -> serialized tf.train.Example, model outputs -> JSON results.

As TF Serving (util/json_tensor.cc, servables/tensorflow/util.cc, classifier.cc, regressor.cc):
- every example becomes a tf.train.Example (integers and booleans -> int64_list, decimals ->
  float_list, strings and {"b64": ...} -> bytes_list, a list -> the values of one feature);
- with "context", TF Serving builds an ExampleListWithContext and feeds the model, for each example,
  the serialized context followed by the serialized example: protobuf reads that as the two merged,
  the example's feature winning where both have one. `decode_examples` returns exactly those bytes;
- the classifier reads the outputs "classes" (DT_STRING [batch, n]) and "scores" (DT_FLOAT [batch, n]),
  the regressor the output "outputs" (DT_FLOAT [batch] or [batch, 1]).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2

from .codec import (b64_decode, float_texts, is_lossless, json_string, json_type, lossy_error,
                    to_bytes, value_to_string)
from .errors import ServingError, failed_precondition, invalid_argument
from .signatures import Signature
from .validation import array_type_name

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_INPUTS, CLASSES, SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"


# ---------------------------------------------------------------- request

def decode_examples(doc: dict) -> list[bytes]:
    """The request's examples, each serialized (context first when there is one), ready to feed.

    Raises INVALID_ARGUMENT with TF Serving's messages: "Example must be JSON object but got JSON
    <type>", "... key 'examples' is expected and was not found", "Expecting 'examples' value to be an
    list/array", "'examples' value is an empty array", "Feature: f has element with unexpected JSON
    type: Null", "Unexpected element type in feature: f expecting type: int64", "Feature: f has uint64
    element. Only int64 is supported.", "Cannot convert JSON value: v to float without loss of
    precision.", "Unable to base64 decode".
    """
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {value_to_string(doc)} Is not object")
    context = make_example(doc["context"]) if "context" in doc else None
    if "examples" not in doc:
        raise _format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    items = doc["examples"]
    if not isinstance(items, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not items:
        raise _format_error(doc, "'examples' value is an empty array")
    serialized = [make_example(e).SerializeToString(deterministic=True) for e in items]
    if context is None:
        return serialized
    prefix = context.SerializeToString(deterministic=True)
    return [prefix + s for s in serialized]


def _format_error(doc: Any, text: str) -> ServingError:
    return invalid_argument(f"JSON Value: {value_to_string(doc)} {text}")


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
        example.features.feature[name].CopyFrom(feature)
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
        if not is_lossless(v, single=True):
            raise lossy_error(v, "float")
        values.append(float(v))
    elif t is int:
        kind = _want(kind, "int64", name)
        if v >= (1 << 63):
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        values.append(v)
    else:
        raise _unexpected(name, v)
    return kind


# ---------------------------------------------------------------- signature checks

def check_classify_signature(signature: Signature) -> tuple[str, list[str]]:
    """TF Serving's PreProcessClassification: (input key, output keys to fetch) or its error."""
    if signature.method_name != CLASSIFY_METHOD:
        raise invalid_argument(f"Expected classification signature method_name to be {CLASSIFY_METHOD}. "
                               f"Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise failed_precondition(f"No classification inputs found in SignatureDef: {signature.proto}")
    fetch = [k for k in (CLASSES, SCORES) if k in signature.outputs]
    if not fetch:
        raise failed_precondition(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or '
            f'"{SCORES}". Signature was: {signature.proto}')
    return CLASSIFY_INPUTS, fetch


def check_regress_signature(signature: Signature) -> tuple[str, list[str]]:
    """TF Serving's PreProcessRegression: (input key, [output key]) or its error."""
    if signature.method_name != REGRESS_METHOD:
        raise invalid_argument(f"Expected regression signature method_name to be {REGRESS_METHOD}. "
                               f"Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise failed_precondition(f"No regression inputs found in SignatureDef: {signature.proto}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise failed_precondition(f"No regression outputs found in SignatureDef: {signature.proto}")
    return REGRESS_INPUTS, [REGRESS_OUTPUTS]


# ---------------------------------------------------------------- outputs

def _tf_type(arr: np.ndarray) -> str:
    return "DT_" + array_type_name(arr).upper()


def _shape_text(arr: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in arr.shape) + "]"  # TensorShape::DebugString


def check_classify_outputs(outputs: dict[str, np.ndarray], num_examples: int) -> dict[str, np.ndarray]:
    """TF Serving's PostProcessClassification checks; returns {"classes"?, "scores"?} as arrays."""
    found = {k: np.asarray(outputs[k]) for k in (CLASSES, SCORES) if k in outputs}
    if not found:
        raise failed_precondition(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or '
            f'"{SCORES}".')
    for key, want in ((CLASSES, "DT_STRING"), (SCORES, "DT_FLOAT")):
        if key not in found:
            continue
        arr = found[key]
        if arr.ndim != 2:
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {_shape_text(arr)}")
        if _tf_type(arr) != want:
            raise invalid_argument(f"Expected {key} Tensor of {want}. Got: {_tf_type(arr)}")
        if arr.shape[0] != num_examples:
            raise invalid_argument(f"Expected {key} output batch size of {num_examples}. Got: {arr.shape[0]}")
    if len(found) == 2 and found[CLASSES].shape[1] != found[SCORES].shape[1]:
        raise invalid_argument(f"Tensors class and score should match in dim_size(1). "
                               f"Got {found[CLASSES].shape[1]} vs. {found[SCORES].shape[1]}")
    return found


def check_regress_outputs(outputs: dict[str, np.ndarray], num_examples: int) -> dict[str, np.ndarray]:
    """TF Serving's PostProcessRegressionResult checks; returns {"outputs": array}."""
    if REGRESS_OUTPUTS not in outputs:
        raise failed_precondition("No regression outputs found in SignatureDef")
    arr = np.asarray(outputs[REGRESS_OUTPUTS])
    if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)):
        raise invalid_argument("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                               f"but got {_shape_text(arr)}")
    if arr.shape[0] != num_examples:
        raise invalid_argument(f"Input batch size did not match output batch size: {num_examples} "
                               f"vs. {arr.shape[0]}")
    if _tf_type(arr) != "DT_FLOAT":
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_tf_type(arr)}")
    if arr.size != num_examples:
        raise invalid_argument(f"Expected output batch size to be {num_examples}.  Got: {arr.size}")
    return {REGRESS_OUTPUTS: arr}


def check_outputs(outputs: dict[str, np.ndarray], num_examples: int, kind: str) -> dict[str, np.ndarray]:
    """kind "classification" or "regression": the checks above, returning the outputs to encode."""
    if kind == "classification":
        return check_classify_outputs(outputs, num_examples)
    if kind == "regression":
        return check_regress_outputs(outputs, num_examples)
    raise ValueError(f"unknown kind {kind!r}")


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
    num_classes = (classes if classes is not None else scores).shape[1]
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
