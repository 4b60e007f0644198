"""Per-request bookkeeping shared by the middleware and the handlers.

The middleware opens a ``RequestContext`` for every HTTP request (id, clock,
stage timings); the predict handler fills in the model, version and stage
times; the middleware turns them into ``Server-Timing``, the request's log
line and its metrics, whatever the outcome.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

STAGES = ("validate", "features", "graph")
MAX_REQUEST_ID = 128


@dataclass
class RequestContext:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)  # seconds
    model: str | None = None
    version: int | None = None
    arm: str | None = None  # set by the routing strategy; recorded in the prediction log
    strategy: str | None = None
    api_version: str | None = None  # the request API of the path (/v1, /v2...), for log and metrics
    route: Any = None  # the rollout policy's full decision (shadow, holdout), if any
    # feedback and evaluation name their model (and version) for the log line only: they
    # are no prediction, so the request metrics do not count them (version None: "all")
    log_only: bool = False

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def server_timing(self) -> str:
        parts = [f"{stage};dur={self.stages.get(stage, 0.0) * 1000:.3f}" for stage in STAGES]
        parts.append(f"total;dur={self.elapsed() * 1000:.3f}")
        return ", ".join(parts)


request_context_var: ContextVar[RequestContext | None] = ContextVar(
    "tierkit_request_context", default=None
)


def accept_request_id(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is sane (printable ASCII, <= 128), else a new one.

    An unusable id is replaced rather than refused: tracing must never fail a request.
    """
    if header and len(header) <= MAX_REQUEST_ID and all(" " < c <= "~" for c in header):
        return header
    return uuid.uuid4().hex
