"""The REST front end: TF Serving's HTTP API as a lean ASGI app over ``ServerCore``.

Routing, status codes and error bodies follow TF Serving's http_server.cc and
http_rest_api_handler.cc: anything outside ``/v1/`` is a plain 404, a ``/v1/`` path
that is not an API call is INVALID_ARGUMENT "Malformed request", and every failure
inside the API is ``{"error": message}`` with the HTTP status of its gRPC code.

A raw ASGI callable rather than Starlette/FastAPI: the benchmark compares this path
with a no-op server, and a router, request objects and middleware would cost more
than the JSON codec itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import grpc
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from graph_service.api.example_json import (
    ExampleRequest,
    classification_result_json,
    fill_example_request,
    regression_result_json,
)
from graph_service.api.json_body import error_json, parse_json_object, signature_name_of
from graph_service.api.tensor_json import RequestFormat, fill_predict_inputs, predict_response_json
from graph_service.errors import ServingError, invalid_argument
from graph_service.handlers.request_deadline import deadline_in

if TYPE_CHECKING:
    from graph_service.handlers.server_core import ResolvedSignature, ServerCore

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
RenderMetrics = Callable[[], tuple[bytes, str]]
T = TypeVar("T")

# TF Serving's regexes (http_rest_api_util.cc), matched against the raw request path.
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_OFFLOAD_BODY_BYTES = 256 * 1024
_OFFLOAD_OUTPUT_VALUES = 50_000
_INT64_MAX = 2**63 - 1
DEFAULT_SIGNATURE = "serving_default"
_JSON_HEADERS = [(b"content-type", b"application/json")]
# What libevent's evhttp_send_error(404) answers for paths TF Serving does not handle.
_NOT_FOUND_HTML = (
    b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
    b"</BODY></HTML>\n"
)
_INTERNAL_ERROR = "Internal error while serving the request; see the server log."


@dataclass(frozen=True)
class RestApiOptions:
    """Everything the front end is configured with, besides the core it serves."""

    monitoring_path: str | None = None
    render_metrics: RenderMetrics | None = None
    request_timeout_ms: int = 5000  # <= 0: no deadline


def create_rest_app(
    core: ServerCore,
    *,
    monitoring_path: str | None = None,
    render_metrics: RenderMetrics | None = None,
    request_timeout_ms: int = 5000,
) -> RestApi:
    """The ASGI app the server runs under uvicorn, on the loop of the gRPC server."""
    if monitoring_path and render_metrics is None:
        raise ValueError("monitoring_path needs render_metrics")
    return RestApi(
        core,
        RestApiOptions(
            monitoring_path=monitoring_path or None,
            render_metrics=render_metrics,
            request_timeout_ms=request_timeout_ms,
        ),
    )


class RestApi:
    """ASGI callable; one instance per server."""

    def __init__(self, core: ServerCore, options: RestApiOptions) -> None:
        self._core = core
        self._options = options
        timeout_ms = options.request_timeout_ms
        self._timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        raw_path: bytes | None = scope.get("raw_path")
        # The raw (still percent-encoded) path, as TF Serving matches and decodes it.
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        if path == self._options.monitoring_path:
            await self._metrics(send)
            return
        if not _API_PATH.fullmatch(path):
            await _respond(send, 404, _NOT_FOUND_HTML, [(b"content-type", b"text/html")])
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        started = time.perf_counter()
        try:
            with deadline_in(self._timeout_s):
                async with asyncio.timeout(self._timeout_s):
                    payload = await self._dispatch(method, path, body)
            status = 200
        except ServingError as exc:
            status, payload = exc.http_status, error_json(exc.message)
        except TimeoutError:
            error = _deadline_error(self._options.request_timeout_ms)
            status, payload = error.http_status, error_json(error.message)
        except Exception:
            logger.exception("REST %s %s failed", method, path)
            status, payload = 500, error_json(_INTERNAL_ERROR)
        if status != 200 and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "REST %s %s -> %d in %.1f ms: %s",
                method, path, status, (time.perf_counter() - started) * 1e3, payload[:300],
            )
        await _respond(send, status, payload, _JSON_HEADERS)

    async def _metrics(self, send: Send) -> None:
        render = self._options.render_metrics
        assert render is not None
        try:
            body, content_type = render()
        except Exception:
            logger.exception("rendering metrics failed")
            await _respond(send, 500, b"metrics unavailable\n", [(b"content-type", b"text/plain")])
            return
        await _respond(send, 200, body, [(b"content-type", content_type.encode("latin-1"))])

    async def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
        """ProcessRequest: pick the API call from the method and path."""
        if method == "POST":
            match = _PREDICTION_PATH.fullmatch(path)
            if match:
                name, version, label, verb = match.groups()
                spec = _model_spec(name, version, label)
                if verb == "predict":
                    return await self._predict(spec, body)
                if verb == "classify":
                    return await self._classify(spec, body)
                if verb == "regress":
                    return await self._regress(spec, body)
        elif method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if match:
                name, version, label, subresource = match.groups()
                spec = _model_spec(name or "", version, label)
                if not spec.name:
                    raise invalid_argument("Missing model name in request.")
                if subresource == "metadata":
                    return await self._metadata(spec)
                return await self._status(spec)
        raise invalid_argument(f"Malformed request: {method} {path}")

    async def _predict(self, spec: model_pb2.ModelSpec, body: bytes) -> bytes:
        request, request_format = await _cpu_bound(
            len(body) > _OFFLOAD_BODY_BYTES, self._predict_request, spec, body
        )
        response = await self._core.predict(request)
        return await _cpu_bound(
            _value_count(response.outputs) > _OFFLOAD_OUTPUT_VALUES,
            predict_response_json,
            response.outputs,
            request_format,
        )

    def _predict_request(
        self, spec: model_pb2.ModelSpec, body: bytes
    ) -> tuple[predict_pb2.PredictRequest, RequestFormat]:
        doc = parse_json_object(body)
        signature_name = signature_name_of(doc)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = signature_name
        resolved = _resolve_signature(self._core, request.model_spec)
        # Run on the version whose signature we decoded against, even if a newer one
        # becomes available (or the label moves) before the request reaches the core.
        request.model_spec.version.value = resolved.version
        request.model_spec.signature_name = resolved.signature_name
        request_format = fill_predict_inputs(
            doc, resolved.signature_def.inputs, request.inputs, signature_name
        )
        return request, request_format

    async def _classify(self, spec: model_pb2.ModelSpec, body: bytes) -> bytes:
        request = classification_pb2.ClassificationRequest(model_spec=spec)
        await _cpu_bound(len(body) > _OFFLOAD_BODY_BYTES, _fill_examples, body, request)
        response = await self._core.classify(request)
        return classification_result_json(response.result)

    async def _regress(self, spec: model_pb2.ModelSpec, body: bytes) -> bytes:
        request = regression_pb2.RegressionRequest(model_spec=spec)
        await _cpu_bound(len(body) > _OFFLOAD_BODY_BYTES, _fill_examples, body, request)
        response = await self._core.regress(request)
        return regression_result_json(response.result)

    async def _status(self, spec: model_pb2.ModelSpec) -> bytes:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
        response = await self._core.get_model_status(request)
        return _proto_json(response).encode("utf-8")

    async def _metadata(self, spec: model_pb2.ModelSpec) -> bytes:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=["signature_def"]
        )
        response = await self._core.get_model_metadata(request)
        return model_metadata_json(response).encode("utf-8")


async def _cpu_bound(offload: bool, function: Callable[..., T], *args: Any) -> T:
    """Runs big decode/encode jobs on a worker thread so the shared loop (gRPC too) stays
    responsive; small ones inline, where a thread hop would cost more than the work."""
    if offload:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def _value_count(tensors: Mapping[str, tensor_pb2.TensorProto]) -> int:
    return sum(math.prod(dim.size for dim in t.tensor_shape.dim) for t in tensors.values())


def _fill_examples(body: bytes, request: ExampleRequest) -> None:
    fill_example_request(parse_json_object(body), request)


def _resolve_signature(core: ServerCore, spec: model_pb2.ModelSpec) -> ResolvedSignature:
    """core.resolve_signature, with the wording of TF Serving's REST handler.

    That handler looks the signature up itself (GetInfoMap) before predicting, so a
    missing signature reads differently over REST than over gRPC.
    """
    try:
        return core.resolve_signature(spec)
    except ServingError as exc:
        name = spec.signature_name or DEFAULT_SIGNATURE
        if exc.message == f'Serving signature key "{name}" not found.':
            raise invalid_argument(
                f'Serving signature name: "{name}" not found in signature def'
            ) from None
        raise


def _model_spec(name: str, version: str | None, label: str | None) -> model_pb2.ModelSpec:
    """FillModelSpecWithNameVersionAndLabel, with TF Serving's percent-decoding."""
    spec = model_pb2.ModelSpec(name=unquote(name, errors="replace"))
    if version is not None:
        number = int(version)
        if number > _INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = number
    elif label is not None:
        spec.version_label = unquote(label, errors="replace")
    return spec


def _proto_json(message: Any) -> str:
    """Proto JSON as TF Serving prints it: field names as in the .proto, defaults included."""
    return json_format.MessageToJson(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        indent=1,
    )


def model_metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """ToJsonString(GetModelMetadataResponse): the Any is unpacked to a SignatureDefMap."""
    if "signature_def" not in response.metadata:
        raise ServingError(
            grpc.StatusCode.INTERNAL,
            "Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map.",
        )
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(signature_defs):
        raise ServingError(
            grpc.StatusCode.INTERNAL, "Failed to unpack 'Any' object to 'SignatureDefMap'."
        )
    return (
        '{\n"model_spec": ' + _proto_json(response.model_spec)
        + ',\n"metadata": {"signature_def": ' + _proto_json(signature_defs) + "}\n}\n"
    )


def _deadline_error(timeout_ms: int) -> ServingError:
    return ServingError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        f"Deadline Exceeded: the request took longer than {timeout_ms} ms "
        "(--rest_api_timeout_in_ms)",
    )


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode("ascii"))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: the server owns the core's lifecycle."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
