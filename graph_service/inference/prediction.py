"""Predict: checking a PredictRequest against a signature and building the response.

Messages and codes follow tensorflow_serving/servables/tensorflow/predict_util.cc
so clients that match on them keep working. The work is split into
``prepare_predict`` (validation and decoding, cheap) and ``finish_predict``
(encoding) so the graph run in between can go through the batcher or a thread
pool without either half knowing which.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2

from graph_service.errors import ServingError, failed_precondition, invalid_argument
from graph_service.inference.tensor_proto import (
    TensorParseError,
    dtype_name,
    fill_proto,
    to_ndarray,
)
from graph_service.runtime.servable import Servable

DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class PreparedRun:
    """A validated graph call: feeds and fetches named by signature alias."""

    signature_name: str
    inputs: dict[str, np.ndarray]
    output_aliases: tuple[str, ...]


def signature_name_of(requested: str) -> str:
    return requested or DEFAULT_SIGNATURE


def predict_signature(servable: Servable, signature_name: str):
    signature = servable.signatures.get(signature_name)
    if signature is None:
        raise failed_precondition(f'Serving signature key "{signature_name}" not found.')
    return signature


def check_dtype(alias_index: int, expected: int, got: np.ndarray, got_dtype: int) -> None:
    """Refuse a feed of the wrong dtype with the session's own message."""
    if expected != got_dtype:
        raise invalid_argument(
            f"Expects arg[{alias_index}] to be {dtype_name(expected)} but "
            f"{dtype_name(got_dtype)} is provided"
        )


class _PredictPlan:
    """What every Predict on one signature of one version checks against, read once.

    Reading the SignatureDef's proto maps (sorting aliases, looking up dtypes)
    on every request cost more than decoding the request's tensor did.
    """

    __slots__ = ("default_outputs", "feeds", "signature")

    def __init__(self, signature) -> None:
        self.signature = signature
        # (alias, dtype) in feed order: sorted, as the session's arg[i] messages count them.
        inputs = signature.inputs
        self.feeds = tuple((alias, inputs[alias].dtype) for alias in sorted(inputs))
        self.default_outputs = tuple(sorted(signature.outputs))


def _predict_plan(servable: Servable, signature_name: str) -> _PredictPlan:
    key = ("predict", signature_name)
    plan = servable.derived.get(key)
    if plan is None:
        plan = servable.derived[key] = _PredictPlan(predict_signature(servable, signature_name))
    return plan


def prepare_predict(servable: Servable, request: predict_pb2.PredictRequest) -> PreparedRun:
    signature_name = signature_name_of(request.model_spec.signature_name)
    plan = _predict_plan(servable, signature_name)
    sent = request.inputs
    feeds = plan.feeds
    if len(sent) != len(feeds) or not all(alias in sent for alias, _ in feeds):
        _refuse_inputs(plan.signature, sent)
    inputs: dict[str, np.ndarray] = {}
    for index, (alias, dtype) in enumerate(feeds):
        tensor = sent[alias]
        try:
            array = to_ndarray(tensor)
        except TensorParseError:
            raise invalid_argument(f"tensor parsing error: {alias}") from None
        check_dtype(index, dtype, array, tensor.dtype)
        inputs[alias] = array
    output_filter = request.output_filter
    outputs = (
        output_aliases(plan.signature, output_filter) if output_filter else plan.default_outputs
    )
    return PreparedRun(signature_name, inputs, outputs)


def _refuse_inputs(signature, sent) -> None:
    """The request's input aliases are not the signature's: TF Serving's message for how."""
    names = sorted(sent)
    expected = sorted(signature.inputs)
    if len(names) != len(expected):
        extra = sorted(set(names) - set(expected))
        missing = sorted(set(expected) - set(names))
        raise invalid_argument(
            f"input size does not match signature: {len(names)}!={len(expected)} "
            f"len({{{','.join(names)}}}) != len({{{','.join(expected)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    alias = next(a for a in names if a not in signature.inputs)
    raise invalid_argument(
        f"input tensor alias not found in signature: {alias}. Inputs expected to be "
        f"in the set {{{','.join(expected)}}}."
    )


def output_aliases(signature, output_filter) -> tuple[str, ...]:
    if not output_filter:
        return tuple(sorted(signature.outputs))
    seen: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return tuple(seen)


def finish_predict(
    servable: Servable, prepared: PreparedRun, outputs: dict[str, np.ndarray]
) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    spec = response.model_spec
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = prepared.signature_name
    tensors = response.outputs
    for alias in prepared.output_aliases:
        try:
            fill_proto(tensors[alias], outputs[alias])
        except (KeyError, TensorParseError) as exc:
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"cannot encode output {alias}: {exc}"
            ) from None
    return response
