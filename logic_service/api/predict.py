"""The predict endpoints of every request API: routed, pinned to a version, pinned to a label.

``/v1/models/{name}/predict`` is the path clients have always called; each
further API version a model serves (``v2``...) answers at the same paths
under its own prefix (``/v2/models/{name}/predict``), routed only among the
model versions whose manifest accepts it (``api_versions``). The v1 routes
are declared with their documentation; the other prefixes share one set of
handlers whose paths OpenAPI lists per API (``with_api_paths``), because which
APIs exist is known only once the manifests are read, not when routes are
declared; each served model's own path, with its schema, is listed the same
way (``model_openapi``). Every answer of a deprecated API, error or not, carries its
``Deprecation``/``Sunset``/``Link`` headers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from starlette.responses import Response

from logic_service.api.json_body import json_response, read_json_body
from logic_service.api.model_openapi import ModelPaths
from logic_service.api.models import ERROR_RESPONSES, PREDICT_REQUEST_BODY, PredictResponse
from logic_service.errors import ApiError
from logic_service.observability.request_context import RequestContext, request_context_var
from logic_service.routing.api_versions import ApiCatalog
from logic_service.routing.pinned import PinnedRoutes, Router
from logic_service.services import services_of
from logic_service.settings.api_versions import DEFAULT_API_VERSION, is_api_version

MAX_VERSION = 2**63 - 1  # TF Serving's versions are int64
LABEL_PATTERN = r"^[A-Za-z0-9_.\-]{1,128}$"
TEMPLATE_PREFIX = "/v1/models/{name}/"

Version = Annotated[
    int,
    Path(ge=0, le=MAX_VERSION, description="The model version (its directory number)."),
]
Label = Annotated[
    str,
    Path(pattern=LABEL_PATTERN, description="A version label of the graph tier, e.g. stable."),
]
Pin = Callable[[PinnedRoutes], Router]

PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {
        "model": ERROR_RESPONSES[404]["model"],
        "description": "Unknown model, API version, version or label (the message names what "
        "is served).",
    },
    410: {
        "model": ERROR_RESPONSES[404]["model"],
        "description": "This API version was retired for the model.",
    },
}
DOCUMENTED = {
    "response_model": PredictResponse,
    "responses": PREDICT_ERRORS,
    "openapi_extra": {"requestBody": PREDICT_REQUEST_BODY},
    "tags": [f"API {DEFAULT_API_VERSION}"],
}


async def answer(request: Request, name: str, api: str, pin: Pin | None) -> Response:
    """Read the body, predict through the routing policy (or the pin), add the API's headers."""
    services = services_of(request.app)
    headers = services.apis.headers(name, api)
    context = request_context_var.get() or RequestContext("-")
    context.api_version = api
    try:
        body = await read_json_body(request, services.settings.limits)
        router = pin(services.pins) if pin is not None else None
        result = await services.predictor.predict(name, body, context, router)
    except ApiError as exc:
        exc.headers = {**headers, **exc.headers}
        raise
    return json_response(result, headers=headers or None)


def _api(api_version: str) -> str:
    if not is_api_version(api_version):
        raise ApiError(
            404,
            f"no such endpoint: {api_version!r} is not an API version (v1, v2, ...); see /docs",
            "not_found",
        )
    return api_version


def predict_router() -> APIRouter:
    """Every predict path; the app includes it behind the caller guard (API keys, rate)."""
    router = APIRouter()

    @router.post(
        "/v1/models/{name}/predict",
        summary="Score one raw record or a batch of records",
        **DOCUMENTED,
    )
    async def predict(name: str, request: Request) -> Response:
        """Route to a version, validate against its input schema, derive features, score.

        Versions with feature processing take raw records (their schema is in
        the version's manifest). Versions without it take tensors: one record
        is ``{"<input name>": value}`` per signature input, the value shaped like
        the input without its batch dimension. Only versions accepting this
        path's API version answer (docs/api_versions.md).
        """
        return await answer(request, name, DEFAULT_API_VERSION, None)

    @router.post(
        "/v1/models/{name}/versions/{version}/predict",
        summary="Score with exactly this version (the rollout is bypassed)",
        **DOCUMENTED,
    )
    async def predict_version(name: str, version: Version, request: Request) -> Response:
        """Answered by ``version`` with its own input schema and features; 404 names the
        served versions when it is not loaded. Logged with arm and strategy ``pinned``."""
        return await answer(request, name, DEFAULT_API_VERSION, lambda p: p.version(version))

    @router.post(
        "/v1/models/{name}/labels/{label}/predict",
        summary="Score with the version a label points to (the rollout is bypassed)",
        **DOCUMENTED,
    )
    async def predict_label(name: str, label: Label, request: Request) -> Response:
        """The graph tier's label (``stable``, ``canary``...) names the version; then as
        ``/versions/{version}/predict``."""
        return await answer(request, name, DEFAULT_API_VERSION, lambda p: p.label(label))

    # Every other API version: the same handlers, listed per API by ``with_api_paths``.
    @router.post("/{api_version}/models/{name}/predict", include_in_schema=False)
    async def predict_api(api_version: str, name: str, request: Request) -> Response:
        return await answer(request, name, _api(api_version), None)

    @router.post("/{api_version}/models/{name}/versions/{version}/predict", include_in_schema=False)
    async def predict_api_version(
        api_version: str, name: str, version: Version, request: Request
    ) -> Response:
        return await answer(request, name, _api(api_version), lambda p: p.version(version))

    @router.post("/{api_version}/models/{name}/labels/{label}/predict", include_in_schema=False)
    async def predict_api_label(
        api_version: str, name: str, label: Label, request: Request
    ) -> Response:
        return await answer(request, name, _api(api_version), lambda p: p.label(label))

    return router


def with_api_paths(schema: dict[str, Any], catalog: ApiCatalog) -> dict[str, Any]:
    """OpenAPI with the v1 predict paths repeated for every API version the models serve."""
    schema = copy.deepcopy(schema)
    paths = schema["paths"]
    templates = {  # as declared, before any API's notes are added
        path: copy.deepcopy(item)
        for path, item in paths.items()
        if path.startswith(TEMPLATE_PREFIX) and path.endswith("/predict")
    }
    for api, notes in catalog.all_known().items():
        deprecated = catalog.deprecated_everywhere(api)
        for path, template in templates.items():
            item = copy.deepcopy(template)
            for operation in item.values():
                if api != DEFAULT_API_VERSION:
                    operation["operationId"] = f"{operation['operationId']}_{api}"
                    operation["tags"] = [f"API {api}"]
                if notes:
                    note = f"API {api}: " + "; ".join(notes) + "."
                    operation["description"] = f"{operation.get('description', '')}\n\n{note}"
                if deprecated:
                    operation["deprecated"] = True
            paths[f"/{api}{path[len('/v1') :]}"] = item
    return schema


def install_api_openapi(app: FastAPI, catalog: ApiCatalog, stable_label: str) -> None:
    """``/openapi.json`` (and ``/docs``) list the predict paths of every API version, and
    each served model's own path with its request and answer schema (``model_openapi``)."""
    build = app.openapi
    models = ModelPaths(catalog, stable_label)

    def openapi() -> dict[str, Any]:
        schema = with_api_paths(build(), catalog)
        generic = schema["paths"]

        def template_of(api: str) -> dict[str, Any]:
            return generic.get(f"/{api}/models/{{name}}/predict", {}).get("post", {})

        generic.update(models.paths(template_of))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
