"""Which model versions serve which request API (v1, v2...), and how each API is announced.

A model version accepts the API its manifest names (``api_version``; v1 when
absent), because its input schema and feature function are written for
that request shape. The logic tier serves each API at its own path
(``/v1/models/ctr/predict``, ``/v2/models/ctr/predict``) and routes a
request only among the ready versions that accept its API: the routing
policy (stable label, rollout) sees a ``RoutableModel`` narrowed to them, so a
v1 caller never meets a v2 feature pipeline during a migration, and the
other way round.

Everything on the request path reads in-memory snapshots: the narrowed views
are rebuilt only when the registry publishes a new snapshot (compared by
identity), and the retired APIs (``storage/retired_apis.py``, shared database) are
re-read in the background every ``rollout_refresh_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from logic_service.errors import ApiError
from logic_service.routing.traffic_split import resolve
from logic_service.routing.version_policy import StableOrNewest
from logic_service.settings import LogicSettings
from logic_service.settings.api_versions import DEFAULT_API_VERSION, ApiVersionSettings
from logic_service.storage.retired_apis import Retirement, load_retired
from logic_service.versions.routable import RoutableModel

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from logic_service.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


def api_order(api: str) -> int:
    """v2 before v10: API versions sort by their number."""
    return int(api[1:]) if api[1:].isdigit() else 0


def predict_path(api: str, model: str) -> str:
    return f"/{api}/models/{model}/predict"


def _versions(versions: Iterable[int]) -> str:
    listed = sorted(versions)
    if not listed:
        return "none loaded"
    return f"version{'s' if len(listed) > 1 else ''} {', '.join(map(str, listed))}"


def primary_targets(spec: Any, stable_label: str) -> list[str]:
    """The versions or labels a rollout answers with (shadow and holdout only follow them)."""
    targets = [
        *spec.weights,
        spec.baseline or (stable_label if spec.strategy == "canary" else None),
        spec.candidate,
        spec.active,
        spec.standby,
        *spec.arms,
    ]
    return [t for t in targets if t]


def deprecation_headers(model: str, spec: ApiVersionSettings) -> dict[str, str]:
    """``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and ``Link`` for one API of one model."""
    headers: dict[str, str] = {}
    if spec.deprecated is not None:
        headers["Deprecation"] = f"@{int(spec.deprecated.timestamp())}"
    if spec.sunset is not None:
        headers["Sunset"] = format_datetime(spec.sunset, usegmt=True)
    links = []
    if spec.successor is not None:
        links.append(f'<{predict_path(spec.successor, model)}>; rel="successor-version"')
    if spec.link is not None:
        links.append(f'<{spec.link}>; rel="deprecation"; type="text/html"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers


class ApiCatalog:
    """The APIs of every model: served versions per API, announcements, retirements."""

    def __init__(self, settings: LogicSettings) -> None:
        self.settings = settings
        self.registry: ModelRegistry | None = None  # attached by the app once it is started
        self.engine: Engine | None = None
        self.retired: dict[str, dict[str, Retirement]] = {}
        self._views: dict[str, tuple[RoutableModel, dict[str, RoutableModel]]] = {}
        self._headers = {
            (m.name, api): deprecation_headers(m.name, spec)
            for m in settings.models
            for api, spec in m.api_versions.items()
        }
        self._task: asyncio.Task | None = None

    # ---- per request (no I/O) --------------------------------------------------------------

    def api_of(self, model: str, version: int) -> str:
        """The API a loaded version accepts; a version without a manifest takes v1."""
        artifacts = self.registry.artifacts(model, version) if self.registry else None
        manifest = artifacts.manifest if artifacts is not None else None
        return manifest.api_version if manifest is not None else DEFAULT_API_VERSION

    def views(self, model: str) -> dict[str, RoutableModel]:
        """The model's ready versions grouped by API, each group a ``RoutableModel`` of its own."""
        if self.registry is None:
            return {}
        routable = self.registry.routable(model)
        cached = self._views.get(model)
        if cached is not None and cached[0] is routable:
            return cached[1]
        groups: dict[str, list[int]] = {}
        for version in routable.ready_versions:
            groups.setdefault(self.api_of(model, version), []).append(version)
        views = {
            api: RoutableModel(
                model,
                tuple(versions),
                {label: v for label, v in routable.labels.items() if v in versions},
            )
            for api, versions in groups.items()
        }
        self._views[model] = (routable, views)
        return views

    def routable(self, model: str, api: str) -> RoutableModel:
        """What the routing policy may choose from for a request of ``api``."""
        return self.views(model).get(api) or RoutableModel(model, (), {})

    def configured(self, model: str) -> dict[str, ApiVersionSettings]:
        settings = self.settings.model(model)
        return dict(settings.api_versions) if settings is not None else {}

    def known(self, model: str) -> list[str]:
        """APIs the model answers on: v1, the configured ones, those of loaded versions, retired."""
        apis = {DEFAULT_API_VERSION, *self.configured(model), *self.views(model)}
        apis |= set(self.retired.get(model, {}))
        return sorted(apis, key=api_order)

    def model_names(self) -> list[str]:
        """logic.yaml's models, and those the registry discovered that serve a version.

        A discovered model with nothing ready answers no API (503), so it does not
        keep an API from counting as deprecated everywhere.
        """
        if self.registry is None:
            return self.settings.model_names()
        registry = self.registry
        return [
            name
            for name in registry.model_names()
            if self.settings.model(name) is not None or registry.routable(name).ready_versions
        ]

    def retirement(self, model: str, api: str) -> Retirement | None:
        return self.retired.get(model, {}).get(api)

    def headers(self, model: str, api: str) -> dict[str, str]:
        return self._headers.get((model, api), {})

    def serving(self, model: str) -> str:
        """ "API v1: versions 1, 3; API v2: version 2": for messages."""
        views = self.views(model)
        return "; ".join(
            f"API {api}: "
            + (
                "retired"
                if self.retirement(model, api)
                else _versions(views[api].ready_versions if api in views else ())
            )
            for api in self.known(model)
        )

    async def require_known(self, model: str, api: str, wait_s: float) -> None:
        """404 for an API the model does not serve (retired ones are known: they answer 410)."""
        if api in self.known(model):
            return
        # A version of that API may be loading its artifacts right now: worth a bounded wait.
        loading = self.registry is not None and await self.registry.wait_for_loads(model, wait_s)
        if loading and api in self.known(model):
            return
        raise ApiError(
            404,
            f"model {model} serves no API {api} ({self.serving(model)})",
            "unknown_api_version",
        )

    def require_served(self, model: str, api: str) -> None:
        """410 for a retired API, naming its successor when one is configured."""
        retired = self.retirement(model, api)
        if retired is not None:
            successor = self.configured(model).get(api, ApiVersionSettings()).successor
            hint = (
                f"; call {predict_path(successor, model)}"
                if successor
                else f" ({self.serving(model)})"
            )
            raise ApiError(
                410,
                f"API {api} of model {model} was retired at "
                f"{retired.retired_at.isoformat(timespec='seconds')} ({retired.reason}){hint}",
                "api_retired",
            )

    def no_version(self, model: str, api: str, reason: str) -> str:
        """The 503's message: none of the API's versions is ready, or the rollout's rule said so."""
        if not self.routable(model, api).ready_versions:
            return (
                f"model {model}: no version accepting API {api} is ready to serve "
                f"({self.serving(model)})"
            )
        return f"{reason} (request API {api}; {self.serving(model)})"

    def outside_rollout(self, model: str, api: str, policy: Any) -> int | None:
        """The version for an API the model's rollout does not concern, else None.

        A rollout concerns the APIs its ready versions accept: a canary among v1
        versions must not leave v2 callers without an answer (the rollout's rule
        would find none of its versions in the v2 view and refuse). Those callers
        get the user's own rule within their API: the stable label, else the
        newest. When none of the rollout's versions is ready, the rollout's own
        rule decides (a missing version may well be of this API).
        """
        records = getattr(policy, "records", None)
        record = records.get(model) if isinstance(records, dict) else None
        if record is None or record.spec.strategy == "stable" or self.registry is None:
            return None
        label = self.settings.stable_label
        whole = self.registry.routable(model)
        ready = [resolve(t, whole) for t in primary_targets(record.spec, label)]
        ready_versions = [v for v in ready if v is not None]
        if not ready_versions or any(self.api_of(model, v) == api for v in ready_versions):
            return None
        return StableOrNewest(label).choose(self.routable(model, api))

    # ---- views for the admin API, the dashboard and OpenAPI ---------------------------------

    def describe(self, model: str) -> list[dict]:
        views = self.views(model)
        configured = self.configured(model)
        described = []
        for api in self.known(model):
            spec = configured.get(api, ApiVersionSettings())
            view = views.get(api)
            retired = self.retirement(model, api)
            described.append(
                {
                    "api_version": api,
                    "path": predict_path(api, model),
                    "versions": list(view.ready_versions) if view else [],
                    "labels": dict(view.labels) if view else {},
                    "deprecated": _iso(spec.deprecated),
                    "sunset": _iso(spec.sunset),
                    "successor": spec.successor,
                    "retired": retired.public() if retired else None,
                }
            )
        return described

    def all_known(self) -> dict[str, list[str]]:
        """API version -> notes for OpenAPI (deprecations and retirements per model)."""
        notes: dict[str, list[str]] = {}
        for model in self.model_names():
            configured = self.configured(model)
            for api in self.known(model):
                found = notes.setdefault(api, [])
                spec = configured.get(api)
                if spec is not None and spec.deprecated is not None:
                    found.append(
                        f"deprecated for model {model} since {_iso(spec.deprecated)}"
                        + (f", sunset {_iso(spec.sunset)}" if spec.sunset else "")
                        + (f", successor {spec.successor}" if spec.successor else "")
                    )
                if self.retirement(model, api) is not None:
                    found.append(f"retired for model {model} (answers 410)")
        return dict(sorted(notes.items(), key=lambda item: api_order(item[0])))

    def deprecated_everywhere(self, api: str) -> bool:
        """True when every model answering on ``api`` announces it deprecated (or retired it)."""
        flags = [
            (self.configured(m).get(api, ApiVersionSettings()).deprecated is not None)
            or self.retirement(m, api) is not None
            for m in self.model_names()
            if api in self.known(m)
        ]
        return bool(flags) and all(flags)

    # ---- retired APIs from the shared database ---------------------------------------------

    async def start(self, registry: ModelRegistry, engine: Engine | None) -> None:
        self.registry, self.engine = registry, engine
        if engine is None:
            return
        await self.reload()
        self._task = asyncio.create_task(self._forever(), name="tierkit-api-versions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reload(self) -> None:
        if self.engine is None:
            return
        fresh = await asyncio.to_thread(load_retired, self.engine)
        if fresh != self.retired:
            log.info(
                "retired APIs: %s",
                ", ".join(f"{m} {api}" for m, apis in fresh.items() for api in apis) or "none",
            )
        self.retired = fresh

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rollout_refresh_s)
            try:
                await self.reload()
            except Exception:  # a database hiccup keeps the last known state
                log.exception("reading retired APIs failed")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
