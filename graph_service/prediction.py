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
from graph_service.servable import Servable
from graph_service.tensor_proto import (
    TensorParseError,
    dtype_name,
    to_ndarray,
    to_proto,
)

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


def prepare_predict(servable: Servable, request: predict_pb2.PredictRequest) -> PreparedRun:
    signature_name = signature_name_of(request.model_spec.signature_name)
    signature = predict_signature(servable, signature_name)
    if len(request.inputs) != len(signature.inputs):
        sent = sorted(request.inputs)
        expected = sorted(signature.inputs)
        extra = sorted(set(sent) - set(expected))
        missing = sorted(set(expected) - set(sent))
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    inputs: dict[str, np.ndarray] = {}
    feed_order = sorted(request.inputs)
    for alias in feed_order:
        info = signature.inputs.get(alias)
        if info is None:
            raise invalid_argument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be "
                f"in the set {{{','.join(sorted(signature.inputs))}}}."
            )
        tensor = request.inputs[alias]
        try:
            array = to_ndarray(tensor)
        except TensorParseError:
            raise invalid_argument(f"tensor parsing error: {alias}") from None
        check_dtype(feed_order.index(alias), info.dtype, array, tensor.dtype)
        inputs[alias] = array
    return PreparedRun(signature_name, inputs, output_aliases(signature, request.output_filter))


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
    for alias in prepared.output_aliases:
        try:
            proto = to_proto(outputs[alias])
        except (KeyError, TensorParseError) as exc:
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"cannot encode output {alias}: {exc}"
            ) from None
        response.outputs[alias].CopyFrom(proto)
    return response
