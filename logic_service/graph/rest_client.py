"""The graph client over TF Serving's REST API (``/v1/models/...``).

One ``httpx.AsyncClient`` per process keeps connections alive between
requests. Tensors travel in the columnar ``inputs`` format, which TF Serving
answers with ``outputs``: an object by output name, or, when the signature has
a single output, the bare value (api_rest.md), which we name from the signature.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from logic_service.codecs.dtypes import numpy_dtype
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


def _error_text(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
    except ValueError:
        pass
    return response.text[:200]


def map_http_error(response: httpx.Response, what: str) -> GraphError:
    status = response.status_code
    message = f"{what}: HTTP {status}: {_error_text(response)}"
    if status == 404:
        return VersionNotFound(message)
    if status == 400:
        return GraphRejected(message)
    if status == 503:
        return GraphUnavailable(message)
    if status == 504:
        return GraphTimeout(message)
    return GraphBadAnswer(message)


class RestGraphClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            trust_env=False,  # never route loopback/cluster calls through an env proxy
            limits=httpx.Limits(max_keepalive_connections=64, keepalive_expiry=60),
            headers={"Content-Type": "application/json"},
        )

    async def _call(
        self, method: str, path: str, what: str, timeout_s: float, body: bytes | None = None
    ) -> Any:
        try:
            response = await self._http.request(method, path, content=body, timeout=timeout_s)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise GraphUnavailable(f"{what}: connect timeout to {self.base_url}") from exc
            raise GraphTimeout(f"{what}: no answer within {timeout_s:.3f}s") from exc
        except httpx.TransportError as exc:
            raise GraphUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise map_http_error(response, what)
        try:
            return json.loads(response.content)  # stdlib: TF Serving writes NaN/Infinity
        except ValueError as exc:
            raise GraphBadAnswer(f"{what}: answer is not JSON: {exc}") from exc

    async def predict(
        self,
        model: str,
        version: int,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_names: list[str],
        timeout_s: float,
    ) -> dict[str, np.ndarray]:
        what = f"predict {model}/{version}"
        body = orjson.dumps(
            {
                "signature_name": signature_name,
                # orjson writes numeric arrays natively; strings go as lists.
                "inputs": {k: v.tolist() if v.dtype == object else v for k, v in inputs.items()},
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        answer = await self._call(
            "POST", f"/v1/models/{model}/versions/{version}:predict", what, timeout_s, body
        )
        if not isinstance(answer, dict) or "outputs" not in answer:
            raise GraphBadAnswer(f"{what}: answer has no 'outputs'")
        outputs = answer["outputs"]
        named = isinstance(outputs, dict) and set(outputs) == set(output_names)
        if not named:
            if len(output_names) != 1:
                raise GraphBadAnswer(f"{what}: outputs do not match the signature {output_names}")
            outputs = {output_names[0]: outputs}
        try:
            return {name: np.asarray(value) for name, value in outputs.items()}
        except ValueError as exc:
            raise GraphBadAnswer(f"{what}: ragged output: {exc}") from exc

    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        what = f"status {model}"
        answer = await self._call("GET", f"/v1/models/{model}", what, timeout_s)
        try:
            return [
                VersionStatus(
                    version=int(entry["version"]),
                    state=str(entry.get("state", "UNKNOWN")),
                    error=str((entry.get("status") or {}).get("error_message", "")),
                )
                for entry in answer["model_version_status"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphBadAnswer(f"{what}: unexpected status answer: {exc!r}") from exc

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        what = f"metadata {model} label {label}"
        path = f"/v1/models/{model}/labels/{quote(label, safe='')}/metadata"
        try:
            answer = await self._call("GET", path, what, timeout_s)
        except (GraphRejected, VersionNotFound, GraphBadAnswer):
            return None  # an unknown label is a 400 or a 404 depending on the server
        try:
            return int(answer["model_spec"]["version"])
        except (KeyError, TypeError, ValueError):
            return None

    async def signature(
        self, model: str, version: int, signature_name: str, timeout_s: float
    ) -> SignatureSpec:
        what = f"metadata {model}/{version}"
        answer = await self._call(
            "GET", f"/v1/models/{model}/versions/{version}/metadata", what, timeout_s
        )
        try:
            signatures = answer["metadata"]["signature_def"]["signature_def"]
            definition = signatures[signature_name]
            return SignatureSpec(
                method_name=definition.get("method_name", ""),
                inputs={k: _tensor_spec(v) for k, v in definition.get("inputs", {}).items()},
                outputs={k: _tensor_spec(v) for k, v in definition.get("outputs", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GraphBadAnswer(
                f"{what}: no usable signature {signature_name!r}: {exc!r}"
            ) from exc

    async def close(self) -> None:
        await self._http.aclose()


def _tensor_spec(info: dict[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape", {})
    shape = (
        None
        if shape_info.get("unknown_rank")
        else [int(d.get("size", -1)) for d in shape_info.get("dim", [])]
    )
    dtype = info["dtype"]
    numpy_dtype(dtype)  # fail here, not per request, on a dtype we cannot encode
    return TensorSpec(dtype=dtype, shape=shape, tensor_name=info.get("name"))
