"""``GET /v1/models/{name}/evaluation?window=1h``: the prediction log's numbers per version/arm.

The window is a count and a unit (``30s``, ``15m``, ``1h``, ``7d``) ending
now. This worker's queued predictions are flushed first, so a client that has
just been answered sees its own requests; other workers' rows arrive within
their flush interval. See ``evaluation.py`` for what each number means.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import orjson
from fastapi import APIRouter, Request
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api_errors import ApiError
from logic_service.evaluation import version_stats
from logic_service.prediction_log import PredictionRecorder

router = APIRouter()

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


@router.get("/v1/models/{name}/evaluation", summary="Online evaluation per version and arm")
async def get_evaluation(
    name: str, request: Request, window: str = "1h", by_arm: bool = True
) -> Response:
    span = parse_window(window)
    settings = request.app.state.settings
    if settings.model(name) is None:
        served = ", ".join(settings.model_names()) or "none"
        raise ApiError(404, f"unknown model {name!r} (served: {served})", "unknown_model")
    recorder: PredictionRecorder | None = getattr(request.app.state, "prediction_log", None)
    if recorder is not None:
        await run_in_threadpool(recorder.flush, 5.0)
    engine: Engine = request.app.state.database
    until = datetime.now(UTC)
    since = until - span
    stats = await run_in_threadpool(version_stats, engine, name, since, until, by_arm)
    body = {
        "model": name,
        "window": window,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "versions": [dataclasses.asdict(s) for s in stats],
    }
    return Response(orjson.dumps(body), media_type="application/json")
