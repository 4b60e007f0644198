"""``/healthz``, ``/readyz`` and ``/metrics``: what orchestrators and Prometheus ask.

Open to everyone (no API key, no admin token): a probe must not need a
secret. ``/healthz`` answers while the process runs; ``/readyz`` only while
the graph tier is reachable and every configured model has a version ready
(503 with the reasons and ``Retry-After`` otherwise), and says what the
prediction log writer is doing; ``/metrics`` sums every worker's metrics,
first sets the rollout gauges from the shared database
(``dashboard/feed.py``), and asks for ``security.metrics_token`` when one is
set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api.errors import error_response
from logic_service.api.json_body import json_response
from logic_service.api.models import ERROR_RESPONSES, HealthResponse, ReadyResponse
from logic_service.dashboard.feed import record_rollout_gauges
from logic_service.services import services_of


def health_router(metrics_dependencies: Sequence[Any] = ()) -> APIRouter:
    """``metrics_dependencies``: what guards ``/metrics`` (``security.metrics_token``)."""
    router = APIRouter()

    @router.get("/healthz", response_model=HealthResponse, summary="The process is alive")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @router.get(
        "/readyz",
        response_model=ReadyResponse,
        responses=ERROR_RESPONSES,
        summary="Graph tier reachable and every model has a servable version",
    )
    async def readyz(request: Request) -> Response:
        services = services_of(request.app)
        reasons = services.registry.readiness()
        if reasons:
            return error_response(
                503,
                "not_ready",
                "; ".join(reasons),
                {"Retry-After": str(services.settings.graph.retry_after_s)},
            )
        return json_response(
            {
                "status": "ready",
                "models": services.registry.describe(),
                "prediction_log": services.prediction_log.status(),  # spilling? (issue 28)
            }
        )

    @router.get(
        "/metrics",
        summary="Prometheus metrics (summed across workers)",
        dependencies=list(metrics_dependencies),
    )
    async def metrics_endpoint(request: Request) -> Response:
        services = services_of(request.app)
        await run_in_threadpool(record_rollout_gauges, services)  # issue #6
        for model, view in services.registry.describe().items():  # issue 29
            services.metrics.versions_refused.labels(model).set(len(view["failed"]))
        body, content_type = services.metrics.exposition()
        return Response(body, media_type=content_type)

    return router
