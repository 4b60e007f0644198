"""What the admin API does for versions: show what is in use and why, pin and unpin.

``GET /admin/models/{model}/versions``: published, loaded and ready versions,
the labels (models.config's, and those routing uses now: the graph tier's),
and every version in use with its reasons (``in_use``). ``PUT .../pins/{v}``
pins a published version for the operator (loaded first, like ``rollout set``
does: 422 when it is not published, 409 when it cannot load), ``DELETE`` lets
it go again (the user's policy decides once nothing else uses it). The routes
themselves are in ``api/admin_rollouts.py``, behind the admin token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from logic_service.errors import ApiError
from logic_service.pinning.api_use import api_context
from logic_service.pinning.in_use import in_use_now
from logic_service.pinning.pins import OPERATOR, PinStore
from logic_service.pinning.targets import (
    TierState,
    Versions,
    ensure_loaded,
    loaded_versions,
    pending_holder,
    user_labels,
)


async def versions_view(state: TierState, model: str) -> dict[str, Any]:
    settings = state.settings
    config = settings.graph_config
    models_config = config.models_config if config.effective_file is not None else None
    apis = api_context(settings, ready=lambda name: state.registry.routable(name).ready_versions)
    uses = await asyncio.to_thread(
        in_use_now, state.database, models_config, model, settings.stable_label, apis
    )
    pins = await asyncio.to_thread(PinStore(state.database).active, model)
    view = state.registry.version_view(model)
    return {
        "model": model,
        "published": sorted(state.registry.published_versions(model)),
        "loaded": await loaded_versions(state, model),
        "ready": list(view.ready),
        "labels": user_labels(state, model),
        # the labels routing uses now: the graph tier's (models.config's may not be taken yet)
        "routing_labels": dict(view.labels),
        "in_use": [
            {"version": version, "uses": [u.public() for u in reasons]}
            for version, reasons in uses.items()
        ],
        "pins": [p.public() for p in pins],
        "pinning": config.effective_file is not None,
        "effective_file": str(config.effective_file) if config.effective_file else None,
    }


async def pin(state: TierState, model: str, version: int, reason: str) -> None:
    published = sorted(state.registry.published_versions(model))
    if version not in published:
        known = Versions(published, await loaded_versions(state, model))
        raise ApiError(
            422,
            f"version: {version} of model {model} is not published ({known.text()})",
            "version_not_published",
        )
    if state.settings.graph_config.effective_file is None:
        raise ApiError(
            409,
            "this logic tier does not pin versions (graph_config.effective_file is unset)",
            "pinning_off",
        )
    holder = pending_holder()
    store = PinStore(state.database)
    await ensure_loaded(state, model, {version}, holder, f"operator pin: {reason}")
    try:
        await asyncio.to_thread(store.add, model, [version], OPERATOR, reason)
    finally:
        await asyncio.to_thread(store.remove, model, None, holder)


async def unpin(state: TierState, model: str, version: int) -> None:
    store = PinStore(state.database)
    if not await asyncio.to_thread(store.remove, model, [version], OPERATOR):
        held = [p.version for p in await asyncio.to_thread(store.active, model) if not p.pending]
        raise ApiError(
            404,
            f"version {version} of model {model} has no operator pin (pinned: {held or 'none'})",
            "not_pinned",
        )
