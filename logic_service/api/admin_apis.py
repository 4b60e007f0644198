"""``/admin/apis/{model}``: see which versions serve which API, retire an API, restore one.

Behind the same admin token as ``/admin/rollouts`` (``admin_rollouts.require_admin``).
Retiring reads the shared prediction log, so it answers for every replica at
once: 409 naming the request count and the window while the API still had
traffic within ``api_retire_window_s``, else the API is retired everywhere
within ``rollout_refresh_s`` and answers 410 from then on. This worker's
queued prediction rows are written first, so its own last requests count.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api.admin_rollouts import require_admin
from logic_service.api.json_body import json_response, read_small_json
from logic_service.errors import ApiError, unknown_model
from logic_service.routing.api_versions import ApiCatalog
from logic_service.services import services_of
from logic_service.settings.api_versions import is_api_version
from logic_service.storage.retired_apis import StillInUse, restore, retire, traffic

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_REASON = 500


def _catalog(request: Request, model: str, api: str | None = None) -> ApiCatalog:
    services = services_of(request.app)
    registry = services.registry
    if not registry.knows(model):
        raise unknown_model(model, registry.model_names())
    catalog = services.apis
    if api is not None:
        if not is_api_version(api):
            raise ApiError(
                422, f"api_version: {api!r} is not an API version (v1, v2, ...)", "invalid_input"
            )
        if api not in catalog.known(model):
            raise ApiError(
                404,
                f"model {model} has no API {api} ({catalog.serving(model)})",
                "unknown_api_version",
            )
    return catalog


async def _reason(request: Request, default: str) -> str:
    data = await read_small_json(request, MAX_BODY)
    if data is None:
        return default
    if not isinstance(data, dict) or not isinstance(data.get("reason", ""), str | None):
        raise ApiError(422, 'body: must be {"reason": "<text>"}', "invalid_input")
    return (data.get("reason") or default)[:MAX_REASON]


def _view(request: Request, model: str) -> dict[str, Any]:
    """Each API with its versions, announcements, retirement and traffic in the window."""
    services = services_of(request.app)
    catalog = services.apis
    window = services.settings.api_retire_window_s
    since = datetime.now(UTC) - timedelta(seconds=window)
    apis = catalog.describe(model)
    for api in apis:
        seen = traffic(services.database, model, api["api_version"], since)
        api["requests_in_window"] = seen.requests
        api["last_request"] = seen.last.isoformat() if seen.last else None
    return {"model": model, "retire_window_s": window, "apis": apis}


def api_admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin/apis", dependencies=[Depends(require_admin)], tags=["admin"])

    @router.get("/{model}", summary="A model's API versions: versions, deprecation, traffic")
    async def get_apis(model: str, request: Request) -> Response:
        _catalog(request, model)
        return json_response(await run_in_threadpool(_view, request, model))

    @router.post(
        "/{model}/{api_version}/retire",
        summary="Retire an API version (409 while it had traffic within api_retire_window_s)",
    )
    async def retire_api(model: str, api_version: str, request: Request) -> Response:
        catalog = _catalog(request, model, api_version)
        reason = await _reason(request, "retired through the admin API")
        state = services_of(request.app)
        await run_in_threadpool(state.prediction_log.flush, 2.0)
        try:
            window = state.settings.api_retire_window_s
            _retirement, new = await run_in_threadpool(
                retire, state.database, model, api_version, window, reason
            )
        except StillInUse as exc:
            raise ApiError(409, str(exc), "api_in_use") from exc
        if new:
            log.info("model %s: API %s retired (%s)", model, api_version, reason)
        await catalog.reload()
        return json_response(await run_in_threadpool(_view, request, model))

    @router.post("/{model}/{api_version}/restore", summary="Serve a retired API version again")
    async def restore_api(model: str, api_version: str, request: Request) -> Response:
        catalog = _catalog(request, model, api_version)
        reason = await _reason(request, "restored through the admin API")
        database = services_of(request.app).database
        if await run_in_threadpool(restore, database, model, api_version):
            log.info("model %s: API %s restored (%s)", model, api_version, reason)
        await catalog.reload()
        return json_response(await run_in_threadpool(_view, request, model))

    return router
