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

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api_errors import ApiError
from logic_service.blue_green import LabelMoveFailed, move_labels
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
from logic_service.rollout_config import RolloutSpec
from logic_service.rollout_policy import RolloutPolicy
from logic_service.rollout_state import StaleRevision
from logic_service.security import secrets_match

MAX_ADMIN_BODY = 64 * 1024


def _json(content: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def require_admin(request: Request) -> None:
    token = request.app.state.settings.admin_token
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
    registry = request.app.state.registry
    if not registry.knows(model):
        served = ", ".join(registry.model_names()) or "none"
        raise ApiError(404, f"unknown model {model!r} (served: {served})", "unknown_model")
    return request.app.state.rollouts


def _validation_problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "<body>"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY:
        raise ApiError(413, f"body larger than {MAX_ADMIN_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", "invalid_json") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "<body>: must be a JSON object", "invalid_input")
    return data


def _view(request: Request, model: str) -> dict[str, Any]:
    policy: RolloutPolicy = request.app.state.rollouts
    record = policy.get(model)
    shadow = request.app.state.predictor.shadow
    registry = request.app.state.registry
    missing = missing_in(registry, model, record.spec, request.app.state.settings.stable_label)
    return {
        **record.public(),
        "serving": list(registry.routable(model).ready_versions),
        "warnings": [m.public() for m in missing],
        "events": policy.store.events(model, limit=50),
        "shadow": shadow.summary(model) if shadow is not None else [],
    }


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    @router.get("/rollouts/{model}", summary="A model's rollout: spec, state, recent transitions")
    async def get_rollout(model: str, request: Request) -> Response:
        _policy(request, model)
        return _json(await run_in_threadpool(_view, request, model))

    @router.put("/rollouts/{model}", summary="Replace a model's rollout (a canary restarts)")
    async def put_rollout(model: str, request: Request) -> Response:
        policy = _policy(request, model)
        body = await _body(request)
        reason = str(body.pop("reason", "") or "set through the admin API")
        try:
            spec = RolloutSpec.model_validate(body)
        except ValidationError as exc:
            raise ApiError(422, _validation_problems(exc), "invalid_input") from exc
        # Every version it names is published and loaded before it is stored (pinning/).
        state = request.app.state
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
        return _json(await run_in_threadpool(_view, request, model))

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
        return _json(await run_in_threadpool(_view, request, model))

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
        return _json(await version_admin.versions_view(request.app.state, model))

    @router.put("/models/{model}/pins/{version}", summary="Keep a version loaded (operator pin)")
    async def pin(model: str, version: int, request: Request) -> Response:
        _policy(request, model)
        reason = str((await _body(request)).get("reason") or "pinned through the admin API")
        await version_admin.pin(request.app.state, model, version, reason)
        return _json(await version_admin.versions_view(request.app.state, model))

    @router.delete("/models/{model}/pins/{version}", summary="Release an operator pin")
    async def unpin(model: str, version: int, request: Request) -> Response:
        _policy(request, model)
        await version_admin.unpin(request.app.state, model, version)
        return _json(await version_admin.versions_view(request.app.state, model))

    return router


async def _move_labels(request: Request, model: str, spec: RolloutSpec) -> None:
    """Labels follow the switch: stable -> the new active version, canary -> the standby."""
    if not (spec.standby or "").isdigit() or not (spec.active or "").isdigit():
        raise ApiError(409, "move_labels needs active and standby as version numbers", "conflict")
    settings = request.app.state.settings
    labels = {settings.stable_label: int(spec.standby), "canary": int(spec.active)}
    config_path = Path(spec.models_config or "")
    served = None
    if settings.graph_config.effective_file is not None:  # keep versions in use loaded

        def served(_edited: object) -> object:
            state = request.app.state
            apis = api_context(settings, lambda name: state.registry.routable(name).ready_versions)
            return served_config(config_path, state.database, settings.stable_label, apis)

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
