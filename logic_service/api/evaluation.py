"""``GET /v1/models/{name}/evaluation?window=1h``: the prediction log's numbers per version/arm.

The window is a count and a unit (``30s``, ``15m``, ``1h``, ``7d``) ending
now. This worker's queued predictions are flushed first, so a client that has
just been answered sees its own requests; other workers' rows arrive within
their flush interval. See ``storage/evaluation.py`` for what each number means.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api.json_body import json_response
from logic_service.errors import ApiError, unknown_model
from logic_service.observability.request_context import request_context_var
from logic_service.services import services_of
from logic_service.storage.evaluation import version_stats

WINDOW_PATTERN = re.compile(r"^([1-9][0-9]{0,6})([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_WINDOW = timedelta(days=366)


def parse_window(text: str) -> timedelta:
    match = WINDOW_PATTERN.match(text.strip())
    if not match:
        raise ApiError(
            422,
            f"window: must be a positive count and a unit s, m, h or d (30s, 15m, 1h, 7d), "
            f"got {text!r}",
            "invalid_input",
        )
    window = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if window > MAX_WINDOW:
        raise ApiError(422, f"window: at most 366d, got {text!r}", "invalid_input")
    return window


def evaluation_router() -> APIRouter:
    """GET /v1/models/{name}/evaluation; the app includes it behind the caller guard."""
    router = APIRouter()

    @router.get("/v1/models/{name}/evaluation", summary="Online evaluation per version and arm")
    async def get_evaluation(
        name: str, request: Request, window: str = "1h", by_arm: bool = True
    ) -> Response:
        span = parse_window(window)
        services = services_of(request.app)
        if not services.registry.knows(name):  # logic.yaml's models and discovered ones
            raise unknown_model(name, services.registry.model_names())
        context = request_context_var.get()
        if context is not None:  # the log line: model=<name> version=all
            context.model, context.log_only = name, True
        await run_in_threadpool(services.prediction_log.flush, 5.0)
        engine = services.database
        until = datetime.now(UTC)
        since = until - span
        # before this, only 1-minute aggregates are kept: the window is read in whole minutes
        retention = services.settings.storage.retention
        fine_since = until - timedelta(hours=retention.fine_aggregates_hours)
        stats = await run_in_threadpool(
            version_stats, engine, name, since, until, by_arm, fine_since
        )
        body = {
            "model": name,
            "window": window,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "versions": [dataclasses.asdict(s) for s in stats],
        }
        return json_response(body)

    return router
