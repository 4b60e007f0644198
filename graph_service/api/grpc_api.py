"""The gRPC front end: PredictionService and ModelService on ``grpc.aio``.

Servicers are thin: the request proto goes to ServerCore as is and a
ServingError becomes the RPC status (code + TF Serving's message). Anything
else is a bug, answered INTERNAL and logged here with its traceback, so a
request can never take the server down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from graph_service.api.profiler_service import ProfilerForwarder
from graph_service.errors import ServingError
from graph_service.handlers.request_deadline import deadline_in
from graph_service.handlers.server_core import ServerCore

log = logging.getLogger("graph_service")

# TF Serving: builder.SetMaxMessageSize(kint32max); -1 means unlimited in gRPC Python.
DEFAULT_SERVER_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.so_reuseport", 0),
]


async def _answer(
    api: str, context: grpc.aio.ServicerContext, call: Callable[[Any], Awaitable], request
):
    try:
        with deadline_in(context.time_remaining()):  # None when the caller set no deadline
            return await call(request)
    except ServingError as exc:
        await context.abort(exc.code, exc.message)
    except grpc.aio.AbortError:
        raise
    except Exception:
        log.exception("%s: unexpected error", api)
        await context.abort(grpc.StatusCode.INTERNAL, f"Internal error in {api}")


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    async def Predict(self, request, context):
        return await _answer("Predict", context, self._core.predict, request)

    async def Classify(self, request, context):
        return await _answer("Classify", context, self._core.classify, request)

    async def Regress(self, request, context):
        return await _answer("Regress", context, self._core.regress, request)

    async def MultiInference(self, request, context):
        return await _answer("MultiInference", context, self._core.multi_inference, request)

    async def GetModelMetadata(self, request, context):
        return await _answer(
            "GetModelMetadata", context, self._core.get_model_metadata, request
        )


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self._core = core

    async def GetModelStatus(self, request, context):
        return await _answer(
            "GetModelStatus", context, self._core.get_model_status, request
        )

    async def HandleReloadConfigRequest(self, request, context):
        return await _answer(
            "HandleReloadConfigRequest", context, self._core.reload_config, request
        )


def create_grpc_server(
    core: ServerCore,
    extra_options: list[tuple[str, int | str]] | None = None,
    enable_profiler: bool = False,
) -> grpc.aio.Server:
    """A grpc.aio server with both services registered (and TF's ProfilerService with
    ``enable_profiler``, profiler_service.py); the caller adds ports."""
    options = dict(DEFAULT_SERVER_OPTIONS)
    options.update(dict(extra_options or []))
    handlers = [ProfilerForwarder()] if enable_profiler else None
    server = grpc.aio.server(handlers=handlers, options=list(options.items()))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    return server
