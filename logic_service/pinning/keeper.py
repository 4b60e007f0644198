"""The keeper: writes the graph tier's effective config so that versions in use stay loaded.

Every logic process runs one, but only the holder of the ``graph-config-keeper``
lease (``rollout_leases``, one conditional UPDATE; several replicas x workers
share one database) acts. Each ``interval_s`` it reads the user's models.config,
the version folders, the rollouts and pins in the database, computes the
effective config (``models_config.effective_config``) and, when its bytes differ
from the file the graph tier polls, replaces that file atomically. Every
process would compute the same bytes, so a change of holder changes nothing.

Then it checks the graph tier took it: GetModelStatus until every pinned
version is AVAILABLE; a new plan (a rollout ended, a folder deleted) replaces a
write still being checked. A pinned version that fails to load, or a config the graph
tier does not take within ``verify_s``, makes it restore the last good file and
say why (a ``pin_failed`` rollout event and an error in the log); those exact
bytes are not written again for ``REFUSED_FOR_S`` unless the inputs change.

The holder also records ``version_missing`` / ``versions_back`` events when a
version a rollout names stops (or starts again) being able to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from logic_service.graph.client import GraphClient, GraphError
from logic_service.pinning.api_use import ApiContext, api_context
from logic_service.pinning.in_use import Use
from logic_service.pinning.missing import MissingVersion
from logic_service.pinning.models_config import (
    ConfigUnreadable,
    write_atomically,
)
from logic_service.pinning.pins import PinStore
from logic_service.pinning.plan import Plan, plan_effective
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.rollout_state import RolloutStore

log = logging.getLogger(__name__)

LEASE = "graph-config-keeper"
REFUSED_FOR_S = 300.0
SWEEP_S = 60.0
# (model, rollout spec) -> what of it cannot serve now (the registry's view)
HealthSource = Callable[[str, RolloutSpec], list[MissingVersion]]


@dataclass
class _Pending:
    text: bytes
    expected: dict[str, set[int]]
    deadline: float
    previous: bytes


@dataclass
class _Reported:
    """Per model: the missing versions last recorded, and the last two looks (debounce)."""

    recorded: list[str] | None = None
    seen: list[list[str]] = field(default_factory=list)


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


def _uses_text(uses: dict[int, list[Use]], versions: tuple[int, ...]) -> str:
    return "; ".join(
        f"{v} ({', '.join(u.why for u in uses.get(v, []))})" for v in versions if v in uses
    )


class GraphConfigKeeper:
    def __init__(
        self,
        models_config: Path,
        effective_file: Path,
        engine: Engine,
        client: GraphClient,
        *,
        stable_label: str = "stable",
        interval_s: float = 1.0,
        verify_s: float = 60.0,
        health: HealthSource | None = None,
        apis: ApiContext | None = None,
        clock: Callable[[], float] = time.time,
        repository: Path | None = None,
    ) -> None:
        self.models_config = models_config
        self.effective_file = effective_file
        self.rollouts = RolloutStore(engine)
        self.pins = PinStore(engine)
        self.client = client
        self.stable_label = stable_label
        self.interval_s = interval_s
        self.verify_s = verify_s
        self.health = health
        self.apis = apis if apis is not None else ApiContext()
        self.clock = clock
        self.repository = repository  # its model folders are served without a models.config entry
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._where = f"{effective_file.parent.name}/{effective_file.name}"  # for events
        self.last_good: bytes | None = None
        self.pending: _Pending | None = None
        self.refused: dict[str, tuple[float, str]] = {}
        self._written_plans: dict[str, str] = {}
        self._reported: dict[str, _Reported] = {}
        self._problem = ""
        self._swept = 0.0
        self._task: asyncio.Task | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="tierkit-graph-config-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the keeper is what keeps versions loaded: it must not die
                log.exception("graph config keeper: tick failed")
            await asyncio.sleep(self.interval_s)

    # ---- one look ----------------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        ttl = max(5.0, 5 * self.interval_s)
        if not await asyncio.to_thread(self.rollouts.take_lease, LEASE, self.owner, ttl, now):
            self.pending = None  # another process writes now; it judges its own writes
            self.last_good = None
            return
        if self.pending is not None:
            await self._verify(now)
        plan = await asyncio.to_thread(self.plan)
        if plan is not None and (self.pending is None or plan.effective.text != self.pending.text):
            # A write still being verified is superseded when its inputs change: a pinned
            # folder deleted meanwhile would otherwise be waited for until ``verify_s``.
            await asyncio.to_thread(self._apply, plan, now)
        if now - self._swept > SWEEP_S:  # pending pins of a rollout set that died waiting
            await asyncio.to_thread(self.pins.drop_expired, now)
            self._swept = now
        if self.health is not None:
            await asyncio.to_thread(self._report_missing, now)

    def plan(self) -> Plan | None:
        """What the effective config should be now (None when models.config is unreadable)."""
        try:
            plan = plan_effective(
                self.models_config,
                self.rollouts,
                self.pins,
                self.stable_label,
                self.apis,
                self.repository,
            )
        except ConfigUnreadable as exc:
            self._say(f"keeping {self.effective_file} as it is: {exc}")
            return None
        self._say("")
        try:
            plan.current = self.effective_file.read_bytes()
        except OSError:
            plan.current = None
        return plan

    def _apply(self, plan: Plan, now: float) -> None:
        text = plan.effective.text
        if text == plan.current:
            if self.last_good is None:
                self.last_good = text  # the graph tier has been serving it
            return
        refused = self.refused.get(_digest(text))
        if refused is not None and now - refused[0] < REFUSED_FOR_S:
            return
        previous = self.last_good or plan.current or plan.user_text
        write_atomically(self.effective_file, text)
        self._record_changes(plan, now)
        expected = plan.effective.expected()
        if expected:
            self.pending = _Pending(text, expected, now + self.verify_s, previous)
        else:  # nothing to verify; a write still being verified is superseded too
            self.pending, self.last_good = None, text

    def _record_changes(self, plan: Plan, now: float) -> None:
        """A ``graph_config`` event for every model whose effective entry changed."""
        written: dict[str, str] = {}
        for name, model_plan in plan.effective.plans.items():
            written[name] = (
                f"graph tier keeps versions {list(model_plan.versions)} of {name} loaded "
                f"(specific policy in {self._where}); in use: "
                f"{_uses_text(plan.uses.get(name, {}), model_plan.pinned)}; "
                f"models.config's {plan.policies.get(name, '?')} selects "
                f"{list(model_plan.selected)}"
            )
            if model_plan.absent:
                written[name] += f"; in use but not published: {list(model_plan.absent)}"
        for name in sorted(set(written) | set(self._written_plans)):
            reason = written.get(name)
            if reason is None:
                reason = (
                    f"nothing of {name} in use any more: the graph tier follows "
                    f"models.config's {plan.policies.get(name, 'policy')} again"
                )
            if self._written_plans.get(name) == reason:
                continue
            log.info("graph config: %s", reason)
            self.rollouts.record_event(name, "graph_config", reason, {}, now)
        self._written_plans = written

    async def _verify(self, now: float) -> None:
        """Did the graph tier load every pinned version? Restore the last good file if not."""
        pending = self.pending
        assert pending is not None
        failures: list[str] = []
        waiting: list[str] = []
        for model, versions in sorted(pending.expected.items()):
            try:
                statuses = {s.version: s for s in await self.client.model_status(model, 5.0)}
            except GraphError as exc:
                waiting.append(f"{model}: graph tier status not readable ({exc})")
                continue
            for version in sorted(versions):
                status = statuses.get(version)
                if status is not None and status.state == "AVAILABLE":
                    continue
                if status is not None and status.state == "END" and status.error:
                    failures.append(f"version {version} of {model} failed to load: {status.error}")
                else:
                    state = status.state if status is not None else "not known"
                    waiting.append(f"version {version} of {model} is {state}")
        if not failures and not waiting:
            self.last_good = pending.text
            self.pending = None
            log.info("graph config: the graph tier serves every pinned version")
            return
        reachable = not any("not readable" in w for w in waiting)
        if not failures and (now < pending.deadline or not reachable):
            return
        why = "; ".join(failures) or (
            f"the graph tier did not load the pinned versions within {self.verify_s:.0f} s "
            f"({'; '.join(waiting)}); is it polling {self.effective_file}?"
        )
        await asyncio.to_thread(self._restore, pending, why, now)

    def _restore(self, pending: _Pending, why: str, now: float) -> None:
        write_atomically(self.effective_file, pending.previous)
        self.refused[_digest(pending.text)] = (now, why)
        self.pending = None
        self.last_good = pending.previous
        self._written_plans = {}
        reason = f"{why}; restored the last good graph config ({self.effective_file})"
        log.error("graph config: %s", reason)
        for model in sorted(pending.expected):
            self.rollouts.record_event(model, "pin_failed", reason, {}, now)

    # ---- versions a rollout names that cannot serve ---------------------------------------

    def _report_missing(self, now: float) -> None:
        assert self.health is not None
        for model, record in self.rollouts.load_all().items():
            try:
                problems = [p.text() for p in self.health(model, record.spec) if p.lasting]
            except KeyError:
                continue  # a model this logic tier does not serve
            seen = self._reported.setdefault(model, _Reported())
            if seen.recorded is None:
                seen.recorded = self._last_recorded(model)
            seen.seen = [*seen.seen[-1:], problems]
            if len(seen.seen) < 2 or seen.seen[0] != problems or problems == seen.recorded:
                continue  # wait for the same finding twice in a row; never repeat one
            if problems:
                reason = "; ".join(problems) + " (traffic follows the fallback rule)"
                self.rollouts.record_event(
                    model, "version_missing", reason, {"problems": problems}, now
                )
                log.warning("rollout %s: %s", model, reason)
            else:
                reason = "no version the rollout names is missing any more"
                self.rollouts.record_event(model, "versions_back", reason, {}, now)
                log.info("rollout %s: %s", model, reason)
            seen.recorded = problems

    def _last_recorded(self, model: str) -> list[str]:
        for event in reversed(self.rollouts.events(model, limit=50)):
            if event["kind"] == "version_missing":
                return list(event["details"].get("problems", []))
            if event["kind"] == "versions_back":
                return []
        return []

    def _say(self, problem: str) -> None:
        if problem and problem != self._problem:
            log.warning("graph config keeper: %s", problem)
        self._problem = problem


async def start_keeper(
    settings: Any, engine: Engine, client: GraphClient, registry: Any
) -> GraphConfigKeeper | None:
    """The app's keeper (None while ``graph_config.effective_file`` is unset), started."""
    from logic_service.pinning.missing import missing_in

    config = settings.graph_config
    if config.effective_file is None:
        log.info("graph config keeper off: graph_config.effective_file is unset")
        return None
    stable = settings.stable_label
    keeper = GraphConfigKeeper(
        config.models_config,
        config.effective_file,
        engine,
        client,
        stable_label=stable,
        interval_s=config.interval_s,
        verify_s=config.verify_s,
        health=lambda model, spec: missing_in(registry, model, spec, stable),
        apis=api_context(settings, ready=registry.holdable_versions),
        repository=settings.model_repository,
    )
    log.info(
        "graph config keeper: versions in use stay loaded; %s follows %s",
        config.effective_file,
        config.models_config,
    )
    await keeper.start()
    return keeper


async def stop_keeper(keeper: GraphConfigKeeper | None) -> None:
    if keeper is not None:
        await keeper.stop()
