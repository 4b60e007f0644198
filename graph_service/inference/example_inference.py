"""Classify, Regress and MultiInference over serialized tf.Example inputs.

Semantics and messages follow TF Serving's classifier.cc, regressor.cc and
multi_inference.cc: a classification signature has one input and a ``classes``
(DT_STRING) and/or ``scores`` (DT_FLOAT) output of shape [batch, num_classes];
a regression signature has one input and a float ``outputs`` of shape [batch]
or [batch, 1]. As for Predict, each call is split into a cheap ``prepare_*``
and a ``finish_*`` around the graph run.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    regression_pb2,
)

from graph_service.errors import ServingError, invalid_argument
from graph_service.inference.example_proto import serialized_examples
from graph_service.inference.prediction import PreparedRun, signature_name_of
from graph_service.inference.tensor_proto import dtype_name
from graph_service.runtime.servable import CallIn, Servable, run_here

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSES = "classes"
SCORES = "scores"
REGRESS_OUTPUTS = "outputs"


def _signature(servable: Servable, signature_name: str):
    signature = servable.signatures.get(signature_name)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {signature_name}")
    return signature


def _check_method(signature, expected: str, what: str, strict: bool) -> None:
    if strict and signature.method_name != expected:
        raise invalid_argument(
            f"Expected {what} signature method_name to be {expected}. Was: {signature.method_name}"
        )


def classification_outputs(signature, strict: bool = False) -> tuple[str, tuple[str, ...]]:
    """(input alias, output aliases) of a classification signature, or INVALID_ARGUMENT."""
    _check_method(signature, CLASSIFY_METHOD, "classification", strict)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    outputs = tuple(alias for alias in (CLASSES, SCORES) if alias in signature.outputs)
    if not outputs:
        raise invalid_argument(
            f"Expected classification signature outputs to contain at least one of "
            f"{CLASSES} or {SCORES}."
        )
    return next(iter(signature.inputs)), outputs


def regression_outputs(signature, strict: bool = False) -> tuple[str, tuple[str, ...]]:
    _check_method(signature, REGRESS_METHOD, "regression", strict)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise invalid_argument(f"No output Tensor with name {REGRESS_OUTPUTS} found.")
    return next(iter(signature.inputs)), (REGRESS_OUTPUTS,)


def _feed(signature, input_alias: str, examples: np.ndarray) -> dict[str, np.ndarray]:
    if signature.inputs[input_alias].dtype != types_pb2.DT_STRING:
        raise invalid_argument(
            f"Expects arg[0] to be {dtype_name(signature.inputs[input_alias].dtype)} "
            "but string is provided"
        )
    return {input_alias: examples}


def prepare_classify(
    servable: Servable, request: classification_pb2.ClassificationRequest, strict: bool = False
) -> PreparedRun:
    signature_name = signature_name_of(request.model_spec.signature_name)
    signature = _signature(servable, signature_name)
    input_alias, outputs = classification_outputs(signature, strict)
    examples = serialized_examples(request.input)
    return PreparedRun(signature_name, _feed(signature, input_alias, examples), outputs)


def prepare_regress(
    servable: Servable, request: regression_pb2.RegressionRequest, strict: bool = False
) -> PreparedRun:
    signature_name = signature_name_of(request.model_spec.signature_name)
    signature = _signature(servable, signature_name)
    input_alias, outputs = regression_outputs(signature, strict)
    examples = serialized_examples(request.input)
    return PreparedRun(signature_name, _feed(signature, input_alias, examples), outputs)


def _num_examples(prepared: PreparedRun) -> int:
    return len(next(iter(prepared.inputs.values())))


def classification_result(
    prepared: PreparedRun, outputs: dict[str, np.ndarray]
) -> classification_pb2.ClassificationResult:
    num_examples = _num_examples(prepared)
    classes = outputs.get(CLASSES)
    scores = outputs.get(SCORES)
    if classes is not None:
        if classes.dtype != np.dtype(object):
            raise invalid_argument(
                f"Expected classes Tensor of DT_STRING. Got: {_dt_name(classes)}"
            )
        classes = _as_matrix(classes, "classes")
        if classes.shape[0] != num_examples:
            raise invalid_argument(
                f"Expected classes output batch size of {num_examples}. Got: {classes.shape[0]}"
            )
    if scores is not None:
        if scores.dtype != np.float32:
            raise invalid_argument(f"Expected scores Tensor of DT_FLOAT. Got: {_dt_name(scores)}")
        scores = _as_matrix(scores, "scores")
        if scores.shape[0] != num_examples:
            raise invalid_argument(
                f"Expected scores output batch size of {num_examples}. Got: {scores.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). "
            f"Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(num_examples):
        entry = result.classifications.add()
        for c in range(num_classes):
            cl = entry.classes.add()
            if classes is not None:
                cl.label = _text(classes[i, c])
            if scores is not None:
                cl.score = float(scores[i, c])
    return result


def regression_result(
    prepared: PreparedRun, outputs: dict[str, np.ndarray]
) -> regression_pb2.RegressionResult:
    num_examples = _num_examples(prepared)
    values = outputs[REGRESS_OUTPUTS]
    if values.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dt_name(values)}")
    if values.ndim == 0 or values.shape[0] != num_examples:
        got = values.shape[0] if values.ndim else 0
        raise invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. {got}"
        )
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
            f"but got {list(values.shape)}"
        )
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1).tolist():
        result.regressions.add().value = value
    return result


def _as_matrix(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim != 2:
        raise invalid_argument(
            f"Expected {what} Tensor of shape [batch_size, num_classes]; got {list(array.shape)}"
        )
    return array


def _dt_name(array: np.ndarray) -> str:
    from graph_service.inference.tensor_proto import dtype_for_numpy

    return types_pb2.DataType.Name(dtype_for_numpy(array))


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def model_spec(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


def check_multi_inference(
    request: inference_pb2.MultiInferenceRequest,
) -> tuple[str, model_pb2.ModelSpec]:
    """Validate the task list; returns the shared model name and the spec to resolve with."""
    if not request.tasks:
        raise invalid_argument("Expected at least one task.")
    model_name = request.tasks[0].model_spec.name
    seen: set[str] = set()
    for task in request.tasks:
        if task.model_spec.name != model_name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        signature_name = signature_name_of(task.model_spec.signature_name)
        if signature_name in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"Unsupported signature method_name: {task.method_name}",
            )
    return model_name, request.tasks[0].model_spec


def prepare_multi_inference(
    servable: Servable, request: inference_pb2.MultiInferenceRequest, strict: bool = False
) -> tuple[PreparedRun, list[tuple[str, str, tuple[str, ...]]]]:
    """One graph run for every task: (combined run, [(method, signature, outputs)])."""
    check_multi_inference(request)
    tasks: list[tuple[str, str, tuple[str, ...]]] = []
    input_name: str | None = None
    input_alias = ""
    first_signature = ""
    all_string_inputs = True
    for task in request.tasks:
        signature_name = signature_name_of(task.model_spec.signature_name)
        signature = servable.signatures.get(signature_name)
        if signature is None:
            raise invalid_argument(
                f"Requested signature not found in model graph: {signature_name}"
            )
        if task.method_name == CLASSIFY_METHOD:
            alias, outputs = classification_outputs(signature, strict)
        else:
            alias, outputs = regression_outputs(signature, strict)
        all_string_inputs &= signature.inputs[alias].dtype == types_pb2.DT_STRING
        tensor_name = signature.inputs[alias].name
        if input_name is None:
            input_name, input_alias, first_signature = tensor_name, alias, signature_name
        elif tensor_name != input_name and not all_string_inputs:
            # TF2 exports give every signature its own input placeholder; TF Serving's
            # TFRT runtime feeds each the same examples, so string inputs may differ.
            raise invalid_argument("Input tensor must be the same for all Signatures.")
        tasks.append((task.method_name, signature_name, outputs))
    examples = serialized_examples(request.input)
    signature = servable.signatures[first_signature]
    return PreparedRun(first_signature, _feed(signature, input_alias, examples), ()), tasks


def run_multi_inference(
    servable: Servable,
    prepared: PreparedRun,
    tasks: Sequence[tuple[str, str, tuple[str, ...]]],
    call: CallIn = run_here,
    timeout_s: float | None = None,
) -> inference_pb2.MultiInferenceResponse:
    """Run all tasks' outputs in one session call (the examples fed to every task's
    input tensor) and split them per task; ``call`` runs the session call, which is
    cancelled after ``timeout_s``."""
    examples = next(iter(prepared.inputs.values()))
    feed_names: list[str] = []
    fetch_names: list[str] = []
    for _, signature_name, outputs in tasks:
        signature = servable.signatures[signature_name]
        feed_names.extend(info.name for info in signature.inputs.values())
        fetch_names.extend(signature.outputs[a].name for a in outputs)
    feeds = list(dict.fromkeys(feed_names))
    unique = list(dict.fromkeys(fetch_names))
    fetched = servable.run_tensors(feeds, unique, [examples] * len(feeds), call, timeout_s)
    values = dict(zip(unique, fetched, strict=True))
    response = inference_pb2.MultiInferenceResponse()
    for method, signature_name, outputs in tasks:
        signature = servable.signatures[signature_name]
        per_task = {a: values[signature.outputs[a].name] for a in outputs}
        task_run = PreparedRun(signature_name, prepared.inputs, outputs)
        result = response.results.add()
        result.model_spec.CopyFrom(model_spec(servable, signature_name))
        if method == CLASSIFY_METHOD:
            result.classification_result.CopyFrom(classification_result(task_run, per_task))
        else:
            result.regression_result.CopyFrom(regression_result(task_run, per_task))
    return response


__all__ = [
    "classification_result",
    "prepare_classify",
    "prepare_multi_inference",
    "prepare_regress",
    "regression_result",
    "run_multi_inference",
]
