"""A caller pins the version: ``/v1/models/{name}/versions/{version}/predict``, or a label.

TF Serving's REST API lets a caller name the version or label; the logic tier
does the same, and then the rollout is bypassed entirely (no split, canary,
shadow or holdout): exactly that version answers, with its own input schema
and feature processing. That is what a client replaying traffic, a
pre-release check or a debugging session needs. The request is logged and
counted like any other, with arm and strategy ``pinned``.

A version must be ready (served by the graph tier, artifacts loaded) and must
accept the path's API; otherwise 404 naming what the model serves. Labels the
registry already tracks (stable, the rollout's) resolve from its snapshot; any
other label is asked of the graph tier once, cached for ``status_refresh_s``,
and, when it names a version, tracked by the registry's refresh from then on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from logic_service.errors import ApiError
from logic_service.graph.client import GraphTimeout, GraphUnavailable
from logic_service.observability.request_context import RequestContext
from logic_service.routing.api_versions import ApiCatalog
from logic_service.settings import LogicSettings
from logic_service.versions.artifacts import VersionArtifacts
from logic_service.versions.registry import ModelRegistry

PINNED = "pinned"  # the arm and the strategy of every pinned request
MAX_TRACKED_LABELS = 32  # per model: callers cannot grow the registry's refresh without bound
MAX_CACHED_LOOKUPS = 1024

Router = Callable[[str, Any, RequestContext], Awaitable[VersionArtifacts]]


class PinnedRoutes:
    """Turns a pinned path into the version's artifacts, or a 404 that names what is served."""

    def __init__(self, settings: LogicSettings, registry: ModelRegistry, apis: ApiCatalog) -> None:
        self.settings = settings
        self.registry = registry
        self.apis = apis
        self._tracked: dict[str, set[str]] = {}
        self._lookups: dict[tuple[str, str], tuple[int | None, float]] = {}

    def label_names(self, model: str) -> set[str]:
        """Labels pinned callers used that the registry should keep resolving."""
        return set(self._tracked.get(model, ()))

    def version(self, version: int) -> Router:
        async def route(model: str, _body: Any, context: RequestContext) -> VersionArtifacts:
            return await self._artifacts(model, version, context, None)

        return route

    def label(self, label: str) -> Router:
        async def route(model: str, _body: Any, context: RequestContext) -> VersionArtifacts:
            _pin(context)
            version = await self._resolve(model, label)
            if version is None:
                raise ApiError(
                    404,
                    f"model {model} has no label {label!r} ({self._served(model)})",
                    "label_not_found",
                )
            return await self._artifacts(model, version, context, label)

        return route

    # ---- internals ---------------------------------------------------------------------------

    async def _artifacts(
        self, model: str, version: int, context: RequestContext, label: str | None
    ) -> VersionArtifacts:
        _pin(context)
        deadline = self.settings.deadline_s(self.registry.settings_of(model))
        if version not in self.registry.routable(model).ready_versions:
            # just published: its artifacts may be loading; a bounded wait, then the verdict
            await self.registry.wait_for_artifacts(model, version, deadline)
        artifacts = self.registry.artifacts(model, version)
        if version not in self.registry.routable(model).ready_versions or artifacts is None:
            what = (
                f"label {label!r} points to version {version}, which is"
                if label
                else f"version {version} is"
            )
            raise ApiError(
                404,
                f"model {model}: {what} not loaded ({self._served(model)})",
                "version_not_found",
            )
        api = context.api_version
        accepted = self.apis.api_of(model, version)
        if api is not None and accepted != api:
            raise ApiError(
                404,
                f"model {model}: version {version} accepts API {accepted}, not {api}: call "
                f"/{accepted}/models/{model}/"
                + (f"labels/{label}" if label else f"versions/{version}")
                + "/predict",
                "version_not_in_api",
            )
        context.version = version
        return artifacts

    async def _resolve(self, model: str, label: str) -> int | None:
        routable = self.registry.routable(model)
        if label in routable.labels:
            return routable.labels[label]
        now = time.monotonic()
        cached = self._lookups.get((model, label))
        if cached is not None and now - cached[1] < self.settings.status_refresh_s:
            return cached[0]
        timeout = min(2.0, self.settings.deadline_s(self.registry.settings_of(model)))
        try:
            version = await self.registry.client.resolve_label(model, label, timeout)
        except (GraphUnavailable, GraphTimeout) as exc:
            raise ApiError(
                503,
                f"graph tier unavailable while resolving label {label!r}: {exc}",
                "graph_unavailable",
                {"Retry-After": str(self.settings.graph.retry_after_s)},
            ) from exc
        if len(self._lookups) >= MAX_CACHED_LOOKUPS:
            self._lookups.clear()  # crude but bounded; entries live one refresh interval anyway
        self._lookups[(model, label)] = (version, now)
        tracked = self._tracked.setdefault(model, set())
        if version is not None and len(tracked) < MAX_TRACKED_LABELS:
            tracked.add(label)
        return version

    def _served(self, model: str) -> str:
        routable = self.registry.routable(model)
        versions = ", ".join(map(str, routable.ready_versions)) or "none"
        known = {  # labels pinned callers used that the registry has not re-read yet, too
            label: version
            for (name, label), (version, _at) in self._lookups.items()
            if name == model and version in routable.ready_versions
        } | dict(routable.labels)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(known.items())) or "none"
        return f"served versions: {versions}; labels: {labels}; by API: {self.apis.serving(model)}"


def _pin(context: RequestContext) -> None:
    context.arm = context.strategy = PINNED
    context.route = None  # no shadow, no holdout: the rollout is bypassed
