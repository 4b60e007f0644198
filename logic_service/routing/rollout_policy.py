"""The routing policy that runs each model's configured rollout strategy.

Per request it only reads an in-memory snapshot (no I/O on the request path);
a background task re-reads the shared ``rollouts`` rows every
``refresh_s`` (cheap: revisions first), and, in exactly one worker holding the
database lease, evaluates canaries against their guardrails and refreshes the
bandit's evidence. Operator actions (admin API) write through the same store,
so every worker follows within one refresh interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from logic_service.routing import bandit, canary, strategies
from logic_service.routing.canary import ArmStats, CanaryState
from logic_service.routing.traffic_split import request_key, request_point, resolve
from logic_service.routing.version_policy import StableOrNewest
from logic_service.settings.rollout import HoldoutSpec, RolloutSpec, ShadowSpec
from logic_service.storage.rollout_state import RolloutRecord, RolloutStore, StaleRevision
from logic_service.versions.routable import RoutableModel

log = logging.getLogger(__name__)

# (model, since, arms) -> outcomes per version over [since, now], summed across workers;
# with arms, only of requests routed as one of them
StatsSource = Callable[[str, float, Collection[str] | None], dict[int, ArmStats]]
CANARY_ARMS = ("baseline", "candidate")
LEASE = "rollout-evaluator"


@dataclass(frozen=True)
class Route:
    version: int
    arm: str
    strategy: str
    key: str | None = None
    shadow_version: int | None = None
    holdout: HoldoutSpec | None = None
    holdout_control: int | None = None
    salt: str = ""
    shadow: ShadowSpec | None = None


class RolloutPolicy:
    def __init__(
        self,
        store: RolloutStore,
        configured: dict[str, RolloutSpec | None],
        stats: StatsSource | None = None,
        stable_label: str = "stable",
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.configured = configured
        self.stats = stats
        self.stable_label = stable_label
        self.refresh_s = refresh_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.fallback = StableOrNewest(stable_label)
        self.records: dict[str, RolloutRecord] = {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._task: asyncio.Task | None = None
        self.on_change: Callable[[RolloutRecord], None] | None = None
        # labels the graph tier reports, to judge label targets (set by the app)
        self.labels_of: Callable[[str], dict[str, int]] | None = None

    # ---- routing (per request, no I/O) -----------------------------------------------------

    def choose(self, model: RoutableModel, request: Any = None) -> int:
        return self.route(model, request).version

    def route(self, model: RoutableModel, request: Any) -> Route:
        record = self.records.get(model.name)
        spec = record.spec if record else RolloutSpec()
        key = request_key(request, spec.key)
        version, arm = self._primary(model, record, spec, key)
        shadow = None
        if spec.shadow is not None:
            point = request_point(model.name, spec.salt, key, self.rng, purpose="shadow")
            target = resolve(spec.shadow.target, model)
            if point < spec.shadow.share and target is not None and target != version:
                shadow = target
        control = None
        if spec.holdout is not None:
            control = resolve(spec.holdout.control, model)
            if control == version:
                control = None
        return Route(
            version, arm, spec.strategy, key, shadow, spec.holdout, control, spec.salt, spec.shadow
        )

    def _primary(
        self, model: RoutableModel, record: RolloutRecord | None, spec: RolloutSpec, key: str | None
    ) -> tuple[int, str]:
        """Only versions the rollout names; the rule for missing ones is strategies'."""
        state = record.state if record else {}
        return strategies.primary(model, spec, state, key, self.rng, self.stable_label)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.records = await asyncio.to_thread(self._load)
        for record in self.records.values():
            self._changed(record)
        self._task = asyncio.create_task(self._forever(), name="tierkit-rollouts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _load(self) -> dict[str, RolloutRecord]:
        """Stored rollouts win a restart, unless logic.yaml changed since it was last applied."""
        stored = self.store.load_all()
        for model, spec in self.configured.items():
            dumped = spec.model_dump(mode="json") if spec is not None else None
            record = stored.get(model)
            if record is None:
                if spec is not None:
                    self.store.ensure(model, spec, {"yaml": dumped}, self.clock())
                continue
            if record.state.get("yaml") != dumped:
                with contextlib.suppress(StaleRevision):  # another worker applied it first
                    self.store.save(
                        record,
                        spec or RolloutSpec(),
                        self._fresh_state(spec or RolloutSpec(), dumped),
                        "configured",
                        "logic.yaml changed since it was last applied",
                        now=self.clock(),
                    )
        return self.store.load_all()

    def _fresh_state(self, spec: RolloutSpec, yaml: Any) -> dict[str, Any]:
        state: dict[str, Any] = {"yaml": yaml}
        if spec.strategy == "canary":
            state["canary"] = CanaryState(stage_started=self.clock()).to_json()
        return state

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # the loop is what keeps workers in step: it must not die
                log.exception("rollout refresh failed")

    def tick(self) -> None:
        """Re-read changed rollouts; the lease holder also evaluates them."""
        self.reload()
        evaluated = any(r.spec.strategy in ("canary", "bandit") for r in self.records.values())
        if evaluated and self.store.take_lease(LEASE, self.owner, max(5.0, 5 * self.refresh_s)):
            self.evaluate()

    def reload(self) -> None:
        revisions = self.store.revisions()
        known = {m: r.revision for m, r in self.records.items()}
        if revisions != known:
            fresh = self.store.load_all()
            for model, record in fresh.items():
                old = self.records.get(model)
                if old is None or old.revision != record.revision:
                    log.info(
                        "rollout %s: now revision %d (%s)",
                        model,
                        record.revision,
                        record.spec.strategy,
                    )
                    self._changed(record)
            self.records = fresh

    def _changed(self, record: RolloutRecord) -> None:
        if self.on_change is not None:
            self.on_change(record)

    # ---- evaluation (one worker) ----------------------------------------------------------------

    def evaluate(self) -> None:
        now = self.clock()
        for model, record in list(self.records.items()):
            try:
                if record.spec.strategy == "canary":
                    self._evaluate_canary(record, now)
                elif record.spec.strategy == "bandit":
                    self._evaluate_bandit(record, now)
            except StaleRevision:
                log.info("rollout %s changed during evaluation; next tick decides", model)

    def _evaluate_canary(self, record: RolloutRecord, now: float) -> None:
        state = CanaryState.from_json(record.state.get("canary"), now)
        if "canary" not in record.state:  # first sight: the first stage starts now
            self._save(
                record,
                {**record.state, "canary": state.to_json()},
                "stage",
                f"canary starts at {record.spec.stages[0]:g}%",
            )
            return
        if state.status != "running" or self.stats is None:
            return
        stats = self.stats(record.model, state.stage_started, CANARY_ARMS)
        baseline_v, candidate_v = self._resolved(record)
        if candidate_v is None:
            return
        new, transition = canary.step(
            record.spec,
            state,
            now,
            stats.get(baseline_v, ArmStats()) if baseline_v is not None else ArmStats(),
            stats.get(candidate_v, ArmStats()),
        )
        if transition is not None:
            self._save(
                record,
                {**record.state, "canary": new.to_json()},
                transition.kind,
                transition.reason,
                {"from_share": transition.from_share, "to_share": transition.to_share},
            )

    def _resolved(self, record: RolloutRecord) -> tuple[int | None, int | None]:
        """Baseline and candidate as numbers, labels through the last routable snapshot."""
        labels = dict(self.labels_of(record.model)) if self.labels_of else {}

        def number(target: str | None) -> int | None:
            if target is None:
                return None
            return int(target) if target.isdigit() else labels.get(target)

        return number(record.spec.baseline or self.stable_label), number(record.spec.candidate)

    def _evaluate_bandit(self, record: RolloutRecord, now: float) -> None:
        if self.stats is None:
            return
        since = record.state.get("bandit_since", record.updated_at)
        stats = self.stats(record.model, since, None)
        labels = dict(self.labels_of(record.model)) if self.labels_of else {}
        counts: dict[str, list[int]] = {}  # JSON-shaped: equal to what the database gives back
        for arm in record.spec.arms:
            version = int(arm) if arm.isdigit() else labels.get(arm)
            arm_stats = stats.get(version, ArmStats()) if version is not None else ArmStats()
            counts[arm] = [arm_stats.successes, arm_stats.failures]
        if counts == record.state.get("bandit"):
            return
        evidence = [bandit.ArmEvidence(a, *c) for a, c in counts.items()]
        shares = bandit.expected_shares(evidence, self.rng, draws=500)
        state = {**record.state, "bandit": counts, "bandit_since": since}
        self._save(
            record, state, "bandit_shares", "new feedback", {"shares": shares, "evidence": counts}
        )

    def _save(
        self,
        record: RolloutRecord,
        state: dict[str, Any],
        kind: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> RolloutRecord:
        saved = self.store.save(record, record.spec, state, kind, reason, details, self.clock())
        self.records = {**self.records, record.model: saved}
        self._changed(saved)
        return saved

    # ---- operator actions (admin API; run in a thread) ----------------------------------------

    def label_targets(self, model: str) -> set[str]:
        """Labels the current rollout of ``model`` routes to (from the cached record)."""
        record = self.records.get(model)
        return record.spec.label_targets() if record else set()

    def get(self, model: str) -> RolloutRecord:
        """The stored rollout; a model never given one routes by its stable label."""
        return self.store.get(model) or RolloutRecord(model, RolloutSpec())

    def put(self, model: str, spec: RolloutSpec, reason: str) -> RolloutRecord:
        """Replace the rollout; a canary starts again at its first stage."""
        record = self.store.get(model) or self.store.ensure(model, RolloutSpec(), now=self.clock())
        state = self._fresh_state(spec, record.state.get("yaml"))
        saved = self.store.save(record, spec, state, "set", reason, {}, self.clock())
        self.records = {**self.records, model: saved}
        return saved

    def act(self, model: str, action: str, reason: str) -> RolloutRecord:
        """promote / rollback of a canary, switch of blue-green (spec edit for the latter)."""
        record = self.get(model)
        if record.revision == 0:
            raise ValueError(f"model {model} has no rollout to {action}")
        spec = record.spec
        if action == "switch":
            if spec.strategy != "blue_green" or not spec.standby:
                raise ValueError("switch needs strategy blue_green with both active and standby")
            new_spec = spec.model_copy(update={"active": spec.standby, "standby": spec.active})
            saved = self.store.save(
                record,
                new_spec,
                record.state,
                "switch",
                f"{reason}: {spec.active} -> {spec.standby}",
                {"active": new_spec.active, "standby": new_spec.standby},
                self.clock(),
            )
        else:
            if spec.strategy != "canary":
                raise ValueError(
                    f"{action} needs strategy canary (this rollout is {spec.strategy})"
                )
            state = CanaryState.from_json(record.state.get("canary"), self.clock())
            new, transition = canary.manual(spec, state, self.clock(), action, reason)
            saved = self.store.save(
                record,
                spec,
                {**record.state, "canary": new.to_json()},
                transition.kind,
                reason,
                {"from_share": transition.from_share, "to_share": transition.to_share},
                self.clock(),
            )
        self.records = {**self.records, model: saved}
        return saved


def evaluation_stats(engine: Any, fine_hours: float = 24.0) -> StatsSource:
    """Guardrail and reward numbers from the log's aggregates, shared by every worker.

    ``fine_hours``: how long 10-second aggregates are kept (``storage.retention``);
    a canary stage that started before that is read in whole minutes.
    """
    from datetime import UTC, datetime, timedelta

    from logic_service.storage.evaluation import version_stats

    def stats(model: str, since: float, arms: Collection[str] | None) -> dict[int, ArmStats]:
        now = datetime.now(UTC)
        rows = version_stats(
            engine,
            model,
            datetime.fromtimestamp(since, UTC),
            now,
            fine_since=now - timedelta(hours=fine_hours),
            arms=arms,
        )
        return {
            row.version: ArmStats(
                requests=row.requests,
                errors=row.errors,
                p99_ms=row.p99_ms,
                feedback=row.feedback,
                metric=row.accuracy,
                successes=row.positives,
                failures=row.feedback - row.positives,
            )
            for row in rows
        }

    return stats


def build_rollout_policy(
    settings: Any,
    engine: Any,
    labels_of: Callable[[str], dict[str, int]],
    metrics: Any = None,
) -> RolloutPolicy:
    """The app's policy: state in the shared database, guardrails from the prediction log."""
    policy = RolloutPolicy(
        RolloutStore(engine),
        {m.name: m.rollout for m in settings.models},
        evaluation_stats(engine, settings.storage.retention.fine_aggregates_hours),
        settings.stable_label,
        settings.rollout_refresh_s,
    )
    policy.labels_of = labels_of
    if metrics is not None:
        policy.on_change = lambda record: _publish_share(metrics, record)
    return policy


def _publish_share(metrics: Any, record: RolloutRecord) -> None:
    """The canary's traffic share as a gauge, so dashboards show the stage it is in."""
    if record.spec.strategy == "canary":
        state = CanaryState.from_json(record.state.get("canary"), 0.0)
        share = canary.candidate_share(record.spec, state)
        metrics.rollout_share.labels(record.model, "canary").set(share)
