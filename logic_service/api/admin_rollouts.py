"""``/admin/rollouts/{model}``: read and change rollouts at runtime, behind an admin token.

The token is separate from anything callers of the predict API hold, compared
in constant time and never logged. Without a configured token the whole
admin API answers 403 and says how to turn it on: an open admin API by
default would let anyone move traffic. Changes are written to the shared
database, so every worker follows within ``rollout_refresh_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api.errors import field_problems
from logic_service.api.json_body import json_response, read_small_json
from logic_service.api.security import secrets_match
from logic_service.errors import ApiError, unknown_model
from logic_service.pinning import admin as version_admin
from logic_service.pinning.api_use import api_context
from logic_service.pinning.missing import missing_in
from logic_service.pinning.pins import PinStore
from logic_service.pinning.plan import served_config
from logic_service.pinning.targets import (
    ensure_loaded,
    pending_holder,
    versions_named,
    with_explicit_baseline,
)
from logic_service.routing.blue_green import LabelMoveFailed, move_labels
from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.services import services_of
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.rollout_state import StaleRevision

MAX_ADMIN_BODY = 64 * 1024


def require_admin(request: Request) -> None:
    token = services_of(request.app).settings.admin_token
    secret = token.get_secret_value() if token is not None else ""
    if not secret:
        raise ApiError(
            403,
            "admin API disabled: set admin_token in logic.yaml or TIERKIT_ADMIN_TOKEN to enable it",
            "admin_disabled",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets_match(given.strip(), secret):
        raise ApiError(
            401,
            "admin API needs the header Authorization: Bearer <admin token>",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )


def _policy(request: Request, model: str) -> RolloutPolicy:
    services = services_of(request.app)
    if not services.registry.knows(model):
        raise unknown_model(model, services.registry.model_names())
    return services.rollouts


async def _body(request: Request) -> dict[str, Any]:
    """The optional JSON object of an admin call (``{}`` when empty)."""
    data = await read_small_json(request, MAX_ADMIN_BODY)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(422, "<body>: must be a JSON object", "invalid_input")
    return data


def _view(request: Request, model: str) -> dict[str, Any]:
    services = services_of(request.app)
    policy = services.rollouts
    record = policy.get(model)
    registry = services.registry
    missing = missing_in(registry, model, record.spec, services.settings.stable_label)
    return {
        **record.public(),
        "serving": list(registry.routable(model).ready_versions),
        "warnings": [m.public() for m in missing],
        "events": policy.store.events(model, limit=50),
        "shadow": services.shadow.summary(model),
    }


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    @router.get("/rollouts/{model}", summary="A model's rollout: spec, state, recent transitions")
    async def get_rollout(model: str, request: Request) -> Response:
        _policy(request, model)
        return json_response(await run_in_threadpool(_view, request, model))

    @router.put("/rollouts/{model}", summary="Replace a model's rollout (a canary restarts)")
    async def put_rollout(model: str, request: Request) -> Response:
        policy = _policy(request, model)
        body = await _body(request)
        reason = str(body.pop("reason", "") or "set through the admin API")
        try:
            spec = RolloutSpec.model_validate(body)
        except ValidationError as exc:
            raise ApiError(422, field_problems(exc.errors()), "invalid_input") from exc
        # Every version it names is published and loaded before it is stored (pinning/).
        state = services_of(request.app)
        spec = with_explicit_baseline(state, model, spec)
        versions = await versions_named(state, model, spec)
        holder = pending_holder()
        await ensure_loaded(state, model, versions, holder, f"rollout set ({spec.strategy})")
        try:
            await run_in_threadpool(policy.put, model, spec, reason)
        except StaleRevision as exc:
            raise ApiError(409, f"{exc}; read it again and retry", "conflict") from exc
        finally:  # the stored rollout holds them now (or nothing changed)
            await run_in_threadpool(PinStore(state.database).remove, model, None, holder)
        return json_response(await run_in_threadpool(_view, request, model))

    async def act(model: str, request: Request, action: str) -> Response:
        policy = _policy(request, model)
        body = await _body(request)
        reason = str(body.get("reason") or f"{action} through the admin API")
        record = await run_in_threadpool(policy.get, model)
        if action == "switch" and record.spec.strategy == "blue_green" and record.spec.move_labels:
            await _move_labels(request, model, record.spec)
        try:
            await run_in_threadpool(policy.act, model, action, reason)
        except StaleRevision as exc:
            raise ApiError(409, f"{exc}; read it again and retry", "conflict") from exc
        except ValueError as exc:
            raise ApiError(409, str(exc), "conflict") from exc
        return json_response(await run_in_threadpool(_view, request, model))

    @router.post("/rollouts/{model}/promote", summary="Canary: next stage now")
    async def promote(model: str, request: Request) -> Response:
        return await act(model, request, "promote")

    @router.post("/rollouts/{model}/rollback", summary="Canary: all traffic back to baseline")
    async def rollback(model: str, request: Request) -> Response:
        return await act(model, request, "rollback")

    @router.post("/rollouts/{model}/switch", summary="Blue-green: swap active and standby")
    async def switch(model: str, request: Request) -> Response:
        return await act(model, request, "switch")

    @router.get("/models/{model}/versions", summary="Versions: published, loaded, in use and why")
    async def versions(model: str, request: Request) -> Response:
        _policy(request, model)
        return json_response(await version_admin.versions_view(services_of(request.app), model))

    @router.put("/models/{model}/pins/{version}", summary="Keep a version loaded (operator pin)")
    async def pin(model: str, version: int, request: Request) -> Response:
        _policy(request, model)
        reason = str((await _body(request)).get("reason") or "pinned through the admin API")
        await version_admin.pin(services_of(request.app), model, version, reason)
        return json_response(await version_admin.versions_view(services_of(request.app), model))

    @router.delete("/models/{model}/pins/{version}", summary="Release an operator pin")
    async def unpin(model: str, version: int, request: Request) -> Response:
        _policy(request, model)
        await version_admin.unpin(services_of(request.app), model, version)
        return json_response(await version_admin.versions_view(services_of(request.app), model))

    return router


async def _move_labels(request: Request, model: str, spec: RolloutSpec) -> None:
    """Labels follow the switch: stable -> the new active version, canary -> the standby."""
    if not (spec.standby or "").isdigit() or not (spec.active or "").isdigit():
        raise ApiError(409, "move_labels needs active and standby as version numbers", "conflict")
    services = services_of(request.app)
    settings = services.settings
    labels = {settings.stable_label: int(spec.standby), "canary": int(spec.active)}
    config_path = Path(spec.models_config or "")
    served = None
    if settings.graph_config.effective_file is not None:  # keep versions in use loaded

        def served(_edited: object) -> object:
            registry = services.registry
            apis = api_context(settings, lambda name: registry.routable(name).ready_versions)
            return served_config(
                config_path,
                services.database,
                settings.stable_label,
                apis,
                settings.model_repository,
            )

    try:
        await run_in_threadpool(
            move_labels,
            config_path,
            settings.graph.grpc_address,
            model,
            labels,
            10.0,
            served,
        )
    except LabelMoveFailed as exc:
        raise ApiError(
            502, f"labels not moved, nothing switched: {exc}", "label_move_failed"
        ) from exc
