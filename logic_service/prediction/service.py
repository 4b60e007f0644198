"""One predict request, from raw JSON to the answer: route, run the version, follow up, log.

All failures leave as ``ApiError`` with the status the caller should see:
their mistakes as 4xx naming the field and the rule, graph-tier trouble as
502/503/504. A NOT_FOUND from the graph tier (the version went away between
our last status read and the call) refreshes the model's status and runs the
request once more from the routing step, so a version switch costs no request.
Running the chosen version (validation, features, graph call) is
``runner.VersionRunner``'s; what a rollout does after the answer (holdout,
shadow) is ``routing/followups.py``'s, handed the runner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from logic_service.errors import ApiError, unknown_model
from logic_service.graph.client import GraphClient, VersionNotFound
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.prediction.runner import VersionRunner
from logic_service.routing import followups
from logic_service.routing.api_versions import ApiCatalog
from logic_service.routing.shadow import ShadowRunner
from logic_service.routing.version_policy import NoVersion, VersionPolicy
from logic_service.settings import LogicSettings
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.versions.artifacts import VersionArtifacts
from logic_service.versions.registry import ModelRegistry

log = logging.getLogger(__name__)

# (model, body, context) -> the version that answers: the routing policy's, or a pinned one
Router = Callable[[str, Any, RequestContext], Awaitable[VersionArtifacts]]


class PredictService:
    def __init__(
        self,
        settings: LogicSettings,
        registry: ModelRegistry,
        client: GraphClient,
        policy: VersionPolicy,
        metrics: Metrics,
        *,
        apis: ApiCatalog | None = None,
        shadow: ShadowRunner | None = None,
        prediction_log: PredictionRecorder | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client = client
        self.policy = policy
        self.runner = VersionRunner(settings, registry, client, metrics)
        self._retry_after = {"Retry-After": str(settings.graph.retry_after_s)}
        self.apis = apis  # versions per request API (v1, v2); None: every version takes any
        self.shadow = shadow  # where shadow copies go; None: no shadow traffic
        self.prediction_log = prediction_log  # None: answers are not recorded

    async def predict(
        self, model: str, body: Any, context: RequestContext, router: Router | None = None
    ) -> dict[str, Any]:
        """Answer by the version ``router`` picks (default: the routing policy's choice).

        With ``context.api_version`` set, only versions accepting that API may answer.
        """
        if not self.registry.knows(model):
            raise unknown_model(model, self.registry.model_names())
        api = context.api_version if self.apis is not None else None
        if self.apis is not None and api is not None:
            # like an unknown model, an API nobody serves is neither logged nor counted:
            # callers probing v1..v9999 must not grow the log's and metrics' label sets
            deadline = self.settings.deadline_s(self.registry.settings_of(model))
            await self.apis.require_known(model, api, deadline)
        context.model = model
        try:
            if self.apis is not None and api is not None:
                self.apis.require_served(model, api)  # a retired API's callers are logged
            answer = await self._predict_known(model, body, context, router or self._route)
        except Exception as exc:
            if self.prediction_log is not None:
                status = exc.status if isinstance(exc, ApiError) else 500
                code = exc.code if isinstance(exc, ApiError) else "internal"
                self.prediction_log.record(context, body, None, status, code)
            raise
        if self.prediction_log is not None:
            self.prediction_log.record(context, body, answer, 200)
        return answer

    async def _predict_known(
        self, model: str, body: Any, context: RequestContext, router: Router
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            artifacts = await router(model, body, context)
            try:
                answer = await self.runner.run(artifacts, body, context)
                return await self._after_answer(model, body, context, answer)
            except VersionNotFound as exc:
                seen_at = time.monotonic()
                if attempt == 2:
                    raise ApiError(
                        503,
                        f"model {model}: the graph tier does not serve it right now ({exc})",
                        "unavailable",
                        self._retry_after,
                    ) from exc
                log.info(
                    "%s/%d gone from the graph tier; refreshing and retrying once",
                    model,
                    artifacts.version,
                )
                await self.registry.refresh(model, seen_at=seen_at)
        raise AssertionError("unreachable")

    def _no_version(self, model: str, exc: NoVersion, api: str | None = None) -> str:
        """The 503's message, naming refused versions: their manifest is the usual cause."""
        refused = self.registry.refused_versions(model)
        message = self.apis.no_version(model, api, str(exc)) if self.apis and api else str(exc)
        if not refused:
            return message
        return (
            f"{message}; refused: version{'s' if len(refused) > 1 else ''} "
            f"{', '.join(map(str, refused))} (the reason is in GET /readyz and the log)"
        )

    async def _route(self, model: str, body: Any, context: RequestContext) -> VersionArtifacts:
        deadline = self.settings.deadline_s(self.registry.settings_of(model))
        try:
            version = self._choose(model, body, context)
        except NoVersion as exc:
            # A new version may be loading its artifacts right now: worth a bounded wait.
            if not await self.registry.wait_for_loads(model, deadline):
                raise ApiError(
                    503,
                    self._no_version(model, exc, context.api_version),
                    "unavailable",
                    self._retry_after,
                ) from exc
            try:
                version = self._choose(model, body, context)
            except NoVersion as again:
                raise ApiError(
                    503,
                    self._no_version(model, again, context.api_version),
                    "unavailable",
                    self._retry_after,
                ) from again
        artifacts = self.registry.artifacts(model, version)
        if artifacts is None:  # pruned between the snapshot and now; wait a little for a reload
            if not await self.registry.wait_for_artifacts(model, version, deadline):
                raise ApiError(
                    503,
                    f"model {model}: version {version} is not loaded yet",
                    "unavailable",
                    self._retry_after,
                )
            artifacts = self.registry.artifacts(model, version)
            assert artifacts is not None
        context.version = version
        return artifacts

    def _choose(self, model: str, body: Any, context: RequestContext) -> int:
        """The policy's version; a rollout policy also names the arm and strategy (issue #5).

        The policy sees only the versions accepting the request's API (routing/api_versions.py).
        """
        routable = self.registry.routable(model)
        if self.apis is not None and context.api_version is not None:
            routable = self.apis.routable(model, context.api_version)
            own = self.apis.outside_rollout(model, context.api_version, self.policy)
            if own is not None:  # the rollout concerns other APIs' versions only
                context.arm = context.strategy = "stable"
                return own
        route = getattr(self.policy, "route", None)
        if route is None:
            return self.policy.choose(routable, body)
        chosen = route(routable, body)
        context.arm, context.strategy = chosen.arm, chosen.strategy
        context.route = chosen
        return chosen.version

    async def _after_answer(
        self, model: str, body: Any, context: RequestContext, answer: dict[str, Any]
    ) -> dict[str, Any]:
        """Holdout (maybe answer by the control version) and shadow copies, per the route."""
        route = context.route
        if route is None:
            return answer
        return await followups.after_answer(
            route,
            model,
            body,
            context,
            answer,
            self.runner.for_model(model),
            self.registry,
            self.shadow,
            getattr(self.policy, "rng", None),  # a route comes from the rollout policy: its rng
        )
