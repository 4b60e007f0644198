"""Shadow traffic: a copy of some requests goes to a candidate version, off the request path.

The caller's answer is sent before the shadow call is even awaited (it runs as
its own asyncio task in a fresh context, so it shares no request id, timing or
prediction-log row with the original). Its answer is only compared with the
primary's: agreement (same side of the threshold), the score difference and
each side's latency, per (primary, shadow) version pair, in metrics and in a
summary the admin API shows. In-flight shadows are bounded; past the bound a
copy is skipped and counted, never queued behind real traffic.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.scores import score_of

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
MAX_KEPT_DIFFS = 2000

# (version, body, context) -> the answer dict of PredictService, or raises
Runner = Callable[[int, Any, RequestContext], Awaitable[dict[str, Any]]]


@dataclass
class PairSummary:
    compared: int = 0
    agreed: int = 0
    failed: int = 0
    diffs: list[float] = field(default_factory=list)
    primary_ms: float = 0.0
    shadow_ms: float = 0.0

    def public(self) -> dict[str, Any]:
        import numpy as np

        diffs = np.asarray(self.diffs, dtype=float)
        quantiles = (
            {f"p{q}": float(np.percentile(diffs, q)) for q in (5, 50, 95)} if diffs.size else {}
        )
        return {
            "compared": self.compared,
            "agreement_rate": self.agreed / self.compared if self.compared else None,
            "failed": self.failed,
            "score_diff": {"mean": float(diffs.mean()) if diffs.size else None, **quantiles},
            "mean_primary_ms": self.primary_ms / self.compared if self.compared else None,
            "mean_shadow_ms": self.shadow_ms / self.compared if self.compared else None,
        }


def _scores(answer: dict[str, Any], output: str | None) -> list[float | None]:
    rows = answer["predictions"] if "predictions" in answer else [answer.get("prediction")]
    return [score_of(row, output) for row in rows]


class ShadowRunner:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.summaries: dict[tuple[str, int, int], PairSummary] = {}
        self._tasks: set[asyncio.Task] = set()

    def launch(
        self,
        run: Runner,
        model: str,
        body: Any,
        primary: dict[str, Any],
        primary_s: float,
        shadow_version: int,
        threshold: float,
        output: str | None,
    ) -> None:
        """Start the shadow call and return at once; the caller never waits for it."""
        pair = (model, int(primary["version"]), shadow_version)
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self.metrics.shadow_requests.labels(model, str(pair[1]), str(pair[2]), "skipped").inc()
            return
        task = asyncio.create_task(
            self._shadow(run, pair, body, primary, primary_s, threshold, output),
            context=contextvars.Context(),
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        run: Runner,
        pair: tuple[str, int, int],
        body: Any,
        primary: dict[str, Any],
        primary_s: float,
        threshold: float,
        output: str | None,
    ) -> None:
        model, primary_v, shadow_v = pair
        summary = self.summaries.setdefault(pair, PairSummary())
        labels = (model, str(primary_v), str(shadow_v))
        started = time.perf_counter()
        try:
            answer = await run(shadow_v, body, RequestContext(f"shadow-{primary['request_id']}"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing candidate is a finding, not an incident
            summary.failed += 1
            self.metrics.shadow_requests.labels(*labels, "failed").inc()
            log.info("shadow %s/%d failed: %s", model, shadow_v, exc)
            return
        spent = time.perf_counter() - started
        self.metrics.shadow_latency.labels(model, str(primary_v), "primary").observe(primary_s)
        self.metrics.shadow_latency.labels(model, str(shadow_v), "shadow").observe(spent)
        for mine, theirs in zip(_scores(primary, output), _scores(answer, output), strict=False):
            if mine is None or theirs is None:
                continue
            agree = (mine > threshold) == (theirs > threshold)
            summary.compared += 1
            summary.agreed += agree
            summary.primary_ms += primary_s * 1000
            summary.shadow_ms += spent * 1000
            if len(summary.diffs) < MAX_KEPT_DIFFS:
                summary.diffs.append(theirs - mine)
            self.metrics.shadow_requests.labels(*labels, "agree" if agree else "disagree").inc()
            self.metrics.shadow_score_diff.labels(*labels).observe(theirs - mine)

    def summary(self, model: str) -> list[dict[str, Any]]:
        return [
            {"primary": p, "shadow": s, **summary.public()}
            for (m, p, s), summary in sorted(self.summaries.items())
            if m == model
        ]

    async def drain(self) -> None:
        """Wait for shadows in flight (shutdown, tests); they are bounded by the deadline."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
