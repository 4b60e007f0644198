"""One predict request, from raw JSON to the answer: route, validate, features, graph call.

All failures leave as ``ApiError`` with the status the caller should see:
their mistakes as 4xx naming the field and the rule, graph-tier trouble as
502/503/504. A NOT_FOUND from the graph tier (the version went away between
our last status read and the call) refreshes the model's status and runs the
request once more from the routing step, so a version switch costs no request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from logic_service import rollout_followups
from logic_service.api_errors import ApiError
from logic_service.feature_pipeline import RecordsRejected
from logic_service.graph_client import (
    GraphBadAnswer,
    GraphClient,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
    VersionNotFound,
)
from logic_service.metrics import Metrics
from logic_service.model_registry import ModelRegistry
from logic_service.prediction_log import PredictionRecorder
from logic_service.request_context import RequestContext
from logic_service.settings import LogicSettings
from logic_service.shadow import ShadowRunner
from logic_service.tensor_records import TensorRecordError
from logic_service.version_artifacts import VersionArtifacts
from logic_service.version_policy import NoVersion, VersionPolicy

if TYPE_CHECKING:
    from logic_service.api_versions import ApiCatalog

log = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 10
# (model, body, context) -> the version that answers: the routing policy's, or a pinned one
Router = Callable[[str, Any, RequestContext], Awaitable[VersionArtifacts]]


def _problems(problems: list[str]) -> str:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


class PredictService:
    def __init__(
        self,
        settings: LogicSettings,
        registry: ModelRegistry,
        client: GraphClient,
        policy: VersionPolicy,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self._retry_after = {"Retry-After": str(settings.graph.retry_after_s)}
        self.shadow: ShadowRunner | None = None  # set by the app when rollouts are on
        self.prediction_log: PredictionRecorder | None = None  # set by the app when recording
        self.apis: ApiCatalog | None = None  # set by the app: versions per request API (v1, v2)

    async def predict(
        self, model: str, body: Any, context: RequestContext, router: Router | None = None
    ) -> dict[str, Any]:
        """Answer by the version ``router`` picks (default: the routing policy's choice).

        With ``context.api_version`` set, only versions accepting that API may answer.
        """
        if not self.registry.knows(model):
            served = ", ".join(self.registry.model_names()) or "none"
            raise ApiError(404, f"unknown model {model!r} (served: {served})", "unknown_model")
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
                answer = await self._run(artifacts, body, context)
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

        The policy sees only the versions accepting the request's API (api_versions.py).
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
        # The shadow compares the version the rollout routed to, even when the holdout
        # answers with its control: comparing the control with itself says nothing.
        primary, primary_s = answer, context.elapsed()
        if route.holdout is not None and route.holdout_control is not None:
            answer = await rollout_followups.holdout(self, route, model, body, context, answer)
        if route.shadow_version is not None and self.shadow is not None:
            spec = route.shadow
            self.shadow.launch(
                self._run_version(model),
                model,
                body,
                primary,
                primary_s,
                route.shadow_version,
                spec.threshold if spec else 0.5,
                spec.output if spec else None,
            )
        return answer

    def _run_version(self, model: str):
        async def run(version: int, body: Any, context: RequestContext) -> dict[str, Any]:
            artifacts = self.registry.artifacts(model, version)
            if artifacts is None:
                raise ApiError(503, f"{model}: version {version} is not loaded", "unavailable")
            return await self._run(artifacts, body, context)

        return run

    async def _run(
        self, artifacts: VersionArtifacts, body: Any, context: RequestContext
    ) -> dict[str, Any]:
        model, version = artifacts.model, artifacts.version
        records, paths, batch = self._records(body, artifacts)

        started = time.perf_counter()
        problems = artifacts.validate(records, paths)
        spent = time.perf_counter() - started
        context.add("validate", spent)
        self.metrics.validation.labels(model, str(version)).observe(spent)
        if problems:
            raise ApiError(422, _problems(problems), "invalid_input")

        started = time.perf_counter()
        try:
            inputs = artifacts.inputs(records, paths)
        except (RecordsRejected, TensorRecordError) as exc:
            raise ApiError(422, _problems(exc.problems), "invalid_input") from exc
        finally:
            spent = time.perf_counter() - started
            context.add("features", spent)
            self.metrics.features.labels(model, str(version)).observe(spent)

        outputs = await self._call_graph(artifacts, inputs, context)
        predictions = self._predictions(outputs, len(records), artifacts)
        answer: dict[str, Any] = {
            "request_id": context.request_id,
            "model": model,
            "version": version,
        }
        if batch:
            answer["predictions"] = predictions
        else:
            answer["prediction"] = predictions[0]
        return answer

    def _records(self, body: Any, artifacts: VersionArtifacts) -> tuple[list, list[str], bool]:
        declares_records = bool(
            artifacts.validator and "records" in artifacts.validator.schema.get("properties", {})
        )
        if isinstance(body, dict) and "records" in body and not declares_records:
            records = body["records"]
            if not isinstance(records, list):
                raise ApiError(422, "records: must be an array of records", "invalid_input")
            if not records:
                raise ApiError(422, "records: must hold at least one record", "invalid_input")
            limit = self.settings.limits.max_records
            if len(records) > limit:
                raise ApiError(
                    413,
                    f"records: {len(records)} records, at most {limit} per request",
                    "too_many_records",
                )
            return records, [f"records[{i}]" for i in range(len(records))], True
        if not isinstance(body, dict):
            raise ApiError(
                422,
                '<body>: must be one record (a JSON object) or {"records": [...]}',
                "invalid_input",
            )
        return [body], [""], False

    async def _call_graph(
        self, artifacts: VersionArtifacts, inputs: dict[str, np.ndarray], context: RequestContext
    ) -> dict[str, np.ndarray]:
        model, version = artifacts.model, artifacts.version
        timeout = self.settings.deadline_s(self.registry.settings_of(model))
        started = time.perf_counter()
        try:
            return await self.client.predict(
                model, version, artifacts.signature_name, inputs, artifacts.output_names, timeout
            )
        except GraphUnavailable as exc:
            raise ApiError(
                503, f"graph tier unavailable: {exc}", "graph_unavailable", self._retry_after
            ) from exc
        except GraphTimeout as exc:
            raise ApiError(
                504,
                f"graph tier exceeded the {timeout * 1000:.0f} ms deadline: {exc}",
                "graph_timeout",
            ) from exc
        except GraphRejected as exc:
            if artifacts.features is None:  # the caller's tensors: their mistake
                raise ApiError(422, f"the model refused the input: {exc}", "invalid_input") from exc
            raise ApiError(
                502, f"graph tier refused the feature tensor: {exc}", "bad_graph_answer"
            ) from exc
        except GraphBadAnswer as exc:
            raise ApiError(502, f"graph tier answer unusable: {exc}", "bad_graph_answer") from exc
        finally:
            spent = time.perf_counter() - started
            context.add("graph", spent)
            self.metrics.graph_call.labels(
                model, str(version), self.settings.graph.protocol
            ).observe(spent)

    def _predictions(
        self, outputs: dict[str, np.ndarray], count: int, artifacts: VersionArtifacts
    ) -> list[dict[str, Any]]:
        names = artifacts.output_names or sorted(outputs)
        missing = [n for n in names if n not in outputs]
        if missing:
            raise ApiError(502, f"graph tier answer lacks outputs {missing}", "bad_graph_answer")
        for name in names:
            array = outputs[name]
            if array.ndim == 0 or array.shape[0] != count:
                raise ApiError(
                    502,
                    f"graph tier output {name!r} has shape {list(array.shape)}, "
                    f"expected {count} rows",
                    "bad_graph_answer",
                )
        return [{name: _value(outputs[name][i]) for name in names} for i in range(count)]


def _value(row: Any) -> Any:
    """One example's output: [1]-shaped values become scalars; numpy stays numpy for orjson."""
    if isinstance(row, np.ndarray):
        if row.shape == (1,):
            row = row[0]
        elif row.dtype == object:
            return [_text(v) for v in row.reshape(-1).tolist()] if row.ndim == 1 else row.tolist()
        else:
            return np.ascontiguousarray(row)
    return _text(row) if isinstance(row, bytes | str) else row


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return {"b64": base64.b64encode(value).decode("ascii")}
    return value
