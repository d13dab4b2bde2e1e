"""classify and regress, apart from any wire format: TF Serving's checks of the signature and outputs.

As TF Serving (servables/tensorflow/classifier.cc, regressor.cc, util.cc, util/input_util.cc):
- a classification signature has method_name "tensorflow/serving/classify", one string input "inputs"
  (serialized tf.Examples) and the outputs "classes" (DT_STRING [batch, n]) and/or "scores"
  (DT_FLOAT [batch, n]); a regression signature "tensorflow/serving/regress", the same input and the
  output "outputs" (DT_FLOAT [batch] or [batch, 1]);
- examples that come with a context (ExampleListWithContext) are fed, for each example, as the serialized
  context followed by the serialized example: protobuf reads that as the two merged, the example's
  feature winning where both have one (`with_context`).
The REST codec (rest/tf_example_json.py) and the gRPC services build the serialized examples; the core
(dataplane.py) runs them and checks what comes back with the functions here.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from .errors import failed_precondition, invalid_argument, unimplemented
from .signatures import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    REGRESS_METHOD,
    Signature,
    shape_text,
    tf_type_name,
)

__all__ = ["CLASSIFY_METHOD", "PREDICT_METHOD", "REGRESS_METHOD"]  # re-exported for the front ends
CLASSIFY_INPUTS, CLASSES, SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"


def with_context(serialized: list[bytes], context: bytes | None) -> list[bytes]:
    """Each serialized example preceded by the serialized context (TF Serving's ExampleListWithContext)."""
    if context is None:
        return list(serialized)
    return [context + s for s in serialized]


class Examples(Sequence):
    """A request's serialized examples and its serialized context (or None), kept apart.

    Merging copies the context into every example: `len(examples) * len(context)` bytes, which a small
    request can make huge (a 4 MB context and 100,000 empty examples: 400 GB). TF Serving merges them
    only after it has found the model and checked its signature; here the core merges them after that
    and after its limits (`copied_size` is what the copies would take, known without making them).
    Reading an item merges all of them once.
    """

    def __init__(self, serialized: list[bytes], context: bytes | None = None):
        self.serialized = serialized
        self.context = context
        self._merged: list[bytes] | None = None

    @property
    def copied_size(self) -> int:
        """Bytes the merge copies the context into: its size times the number of examples."""
        return len(self.context) * len(self.serialized) if self.context else 0

    def parts(self) -> tuple[list[bytes], bytes | None]:
        """The serialized examples and context, unmerged."""
        return self.serialized, self.context

    def merged(self) -> list[bytes]:
        if self._merged is None:
            self._merged = with_context(self.serialized, self.context)
        return self._merged

    def __len__(self) -> int:
        return len(self.serialized)

    def __getitem__(self, i):
        return self.merged()[i]

    def __iter__(self):
        return iter(self.merged())


def merge_examples(examples: Sequence[bytes], max_copied: int = 0) -> list[bytes]:
    """The examples with their context merged, once `max_copied` (bytes; 0: no limit) allows the copies
    of the context that takes; INVALID_ARGUMENT when it does not. The examples themselves are bounded by
    the request's size. Sequences without a context (plain lists) are taken as they are."""
    copied = getattr(examples, "copied_size", None)
    if copied is not None and max_copied and copied > max_copied:
        context = copied // len(examples)
        raise invalid_argument(
            f"Request's context of {context} bytes copied into each of its {len(examples)} examples takes "
            f"{copied} bytes, more than the limit of {max_copied} (8 x --max_request_elements)")
    merged = getattr(examples, "merged", None)
    return merged() if merged is not None else list(examples)


def serialize_input(input_proto) -> Examples:
    """A tensorflow.serving.Input (gRPC Classify/Regress, warm-up records) -> its serialized examples, each
    read with the context first (TF Serving's InputToSerializedExampleTensor), the merge left to the reader
    (Examples); "Input is empty." when it has none."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in input_proto.example_list.examples]
        context = None
    elif kind == "example_list_with_context":
        listed = input_proto.example_list_with_context
        serialized = [e.SerializeToString() for e in listed.examples]
        context = listed.context.SerializeToString()
    else:
        serialized, context = [], None
    if not serialized:
        raise invalid_argument("Input is empty.")
    return Examples(serialized, context)


# ---------------------------------------------------------------- signature checks

def check_classify_signature(signature: Signature) -> tuple[str, list[str]]:
    """TF Serving's PreProcessClassification: (input key, output keys to fetch) or its error. The
    method_name is checked apart, only with --enable_signature_method_name_check (signatures.check_method_name)."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise invalid_argument(f"No classification inputs found in SignatureDef: {signature.proto}")
    fetch = [k for k in (CLASSES, SCORES) if k in signature.outputs]
    if not fetch:
        raise invalid_argument(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or '
            f'"{SCORES}". Signature was: {signature.proto}')
    return CLASSIFY_INPUTS, fetch


def check_regress_signature(signature: Signature) -> tuple[str, list[str]]:
    """TF Serving's PreProcessRegression: (input key, [output key]) or its error. The method_name is
    checked apart, only with --enable_signature_method_name_check (signatures.check_method_name)."""
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise invalid_argument(f"No regression inputs found in SignatureDef: {signature.proto}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature.proto}")
    return REGRESS_INPUTS, [REGRESS_OUTPUTS]


# ---------------------------------------------------------------- outputs

def _tf_type(arr: np.ndarray) -> str:
    return "DT_" + tf_type_name(arr.dtype).upper()


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
            raise invalid_argument(f"Expected Tensor shape: [batch_size num_classes] but got {shape_text(arr.shape)}")
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
                               f"but got {shape_text(arr.shape)}")
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


# Each examples API's checks by its method name: (the signature's, the outputs').
CHECKS = {CLASSIFY_METHOD: (check_classify_signature, check_classify_outputs),
          REGRESS_METHOD: (check_regress_signature, check_regress_outputs)}


def multi_inference_tasks(tasks: Iterable, signature_names) -> Iterator[tuple[str, str]]:
    """(signature name, method name) of each task of a MultiInferenceRequest (`tasks`: InferenceTask protos),
    after TF Serving's checks of it (multi_inference.cc), in its order: a model name, the same for every task,
    no signature twice, a signature in `signature_names`, classify or regress. Task by task, so that a
    caller's own check of one task comes before the next task's."""
    model_name = ""
    seen: set[str] = set()
    for task in tasks:
        name = task.model_spec.name
        if not name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if model_name and name != model_name:
            raise invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        model_name = name
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        if signature_name not in signature_names:
            raise invalid_argument(f"Requested signature not found in model graph: {signature_name}")
        if task.method_name not in CHECKS:
            raise unimplemented(f"Unsupported signature method_name: {task.method_name}")
        yield signature_name, task.method_name
