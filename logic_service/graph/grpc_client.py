"""The graph client over gRPC: TF Serving's PredictionService and ModelService stubs.

One ``grpc.aio`` channel per process, opened at startup and reused by every
request (HTTP/2 multiplexes them). Reconnect backoff is capped at one second:
gRPC's default grows to two minutes, and a graph tier that restarts must be
used again as soon as it listens, not minutes later. Calls do not wait for a
connection (``wait_for_ready`` off), so a dead graph tier costs a request
microseconds, not its whole deadline. The graph tier's name may be resolved
again a second after a connection fails, not gRPC's default 30 s: a graph tier
that comes back under a new address (a recreated container or pod) must be
found as soon as it listens, by every worker.
"""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import wrappers_pb2

from logic_service.codecs.dtypes import DTYPE_NAME
from logic_service.codecs.serving_protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from logic_service.codecs.tensor_proto import from_tensor_proto, to_tensor_proto
from logic_service.graph.client import (
    GraphBadAnswer,
    GraphError,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    VersionNotFound,
    VersionStatus,
)
from logic_service.manifest import SignatureSpec, TensorSpec

CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),  # loopback/cluster traffic must never go through a proxy
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
]
_STATE_NAMES = {
    value.number: value.name
    for value in get_model_status_pb2.ModelVersionStatus.State.DESCRIPTOR.values
}


def map_rpc_error(error: grpc.aio.AioRpcError, what: str) -> GraphError:
    code, details = error.code(), error.details() or ""
    message = f"{what}: {code.name}: {details}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return GraphUnavailable(message)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GraphTimeout(message)
    if code == grpc.StatusCode.NOT_FOUND:
        return VersionNotFound(message)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return GraphRejected(message)
    return GraphBadAnswer(message)


class GrpcGraphClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    async def predict(
        self,
        model: str,
        version: int,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_names: list[str],
        timeout_s: float,
    ) -> dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(
                name=model,
                version=wrappers_pb2.Int64Value(value=version),
                signature_name=signature_name,
            )
        )
        for name, array in inputs.items():
            request.inputs[name].CopyFrom(to_tensor_proto(array))
        try:
            response = await self._predict.Predict(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, f"Predict {model}/{version}") from exc
        if response.model_spec.HasField("version") and response.model_spec.version.value != version:
            raise GraphBadAnswer(
                f"asked {model}/{version}, answered by version {response.model_spec.version.value}"
            )
        try:
            return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}
        except ValueError as exc:
            raise GraphBadAnswer(f"Predict {model}/{version}: {exc}") from exc

    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name=model)
        )
        try:
            response = await self._models.GetModelStatus(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, f"GetModelStatus {model}") from exc
        return [
            VersionStatus(
                version=int(status.version),
                state=_STATE_NAMES.get(status.state, "UNKNOWN"),
                error=status.status.error_message,
            )
            for status in response.model_version_status
        ]

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(name=model, version_label=label),
            metadata_field=["signature_def"],
        )
        try:
            response = await self._predict.GetModelMetadata(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            error = map_rpc_error(exc, f"GetModelMetadata {model} label {label}")
            if isinstance(error, GraphRejected | VersionNotFound | GraphBadAnswer):
                return None  # unknown label: INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION
            raise error from exc
        if not response.model_spec.HasField("version"):
            return None
        return int(response.model_spec.version.value)

    async def signature(
        self, model: str, version: int, signature_name: str, timeout_s: float
    ) -> SignatureSpec:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=model_pb2.ModelSpec(
                name=model, version=wrappers_pb2.Int64Value(value=version)
            ),
            metadata_field=["signature_def"],
        )
        try:
            response = await self._predict.GetModelMetadata(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise map_rpc_error(exc, f"GetModelMetadata {model}/{version}") from exc
        signatures = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(signatures):
            raise GraphBadAnswer(f"GetModelMetadata {model}/{version}: no SignatureDefMap")
        if signature_name not in signatures.signature_def:
            raise GraphBadAnswer(
                f"{model}/{version} has no signature {signature_name!r} "
                f"(has: {', '.join(sorted(signatures.signature_def))})"
            )
        definition = signatures.signature_def[signature_name]
        return SignatureSpec(
            method_name=definition.method_name,
            inputs={k: _tensor_spec(v) for k, v in definition.inputs.items()},
            outputs={k: _tensor_spec(v) for k, v in definition.outputs.items()},
        )

    async def close(self) -> None:
        await self._channel.close()


def _tensor_spec(info) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim]
    return TensorSpec(
        dtype=DTYPE_NAME.get(info.dtype, str(info.dtype)), shape=shape, tensor_name=info.name
    )
