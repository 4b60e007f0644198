"""``POST /v1/feedback``: the outcome of a prediction, joined to its row in the log.

Body: ``{"request_id": "...", "label": 0 | 1 | <number>}`` or with ``"reward"``
instead (or both), plus ``"index"`` for one record of a ``{"records": [...]}``
request (required there; 0..n-1). Late and repeated feedback overwrite the
earlier one (last write wins: a write sets both ``label`` and ``reward``, so a
reward-only write clears an earlier label) and ``feedback_updates`` counts the
writes. Feedback on a failed request's row is accepted but evaluation ignores it.

Feedback may come faster than the writer flushes the prediction: this
worker's queue is flushed on demand, and rows still queued in another worker
are waited for up to ``storage.feedback_wait_ms`` before the answer is 404.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from logic_service.api.errors import field_problems
from logic_service.api.json_body import json_response, read_json_body
from logic_service.errors import ApiError
from logic_service.observability.request_context import request_context_var
from logic_service.services import services_of
from logic_service.storage.feedback_store import store_feedback
from logic_service.storage.prediction_log import MAX_ID, predictions

POLL_S = 0.05


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=MAX_ID)
    index: int | None = Field(None, ge=0)
    label: float | None = None
    reward: float | None = None

    @field_validator("label", "reward", mode="before")
    @classmethod
    def _finite_number(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number (0 or 1 for a binary label)")
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return float(value)


class FeedbackAnswer(BaseModel):
    request_id: str
    index: int
    model: str
    version: int | None
    label: float | None
    reward: float | None
    updates: int = Field(description="Feedback writes to this record so far (1 = first).")


def parse_feedback(body: Any) -> Feedback:
    """422 naming every offending field, in the logic tier's error format."""
    if not isinstance(body, dict):
        raise ApiError(422, "<body>: must be a JSON object with request_id and label or reward")
    try:
        feedback = Feedback.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, field_problems(exc.errors()), "invalid_input") from exc
    if feedback.label is None and feedback.reward is None:
        raise ApiError(422, "label: give a label or a reward (a number)", "invalid_input")
    return feedback


def _find(engine: Engine, request_id: str) -> Any:
    query = (
        select(predictions.c.model, predictions.c.version, predictions.c.batch_size)
        .where(predictions.c.request_id == request_id)
        .limit(1)
    )
    with engine.connect() as connection:
        return connection.execute(query).first()


def _store(engine: Engine, feedback: Feedback, index: int) -> Any:
    """Last write wins; the count of writes and the aggregates follow (storage/feedback_store)."""
    return store_feedback(engine, feedback.request_id, index, feedback.label, feedback.reward)


async def _locate(request: Request, engine: Engine, request_id: str) -> Any:
    row = await run_in_threadpool(_find, engine, request_id)
    if row is not None:
        return row
    services = services_of(request.app)
    await run_in_threadpool(services.prediction_log.flush, 5.0)
    wait_s = services.settings.storage.feedback_wait_ms / 1000.0
    deadline = time.monotonic() + wait_s
    while True:
        row = await run_in_threadpool(_find, engine, request_id)
        if row is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(POLL_S)


def _name_in_log_line(row: Any) -> None:
    """The request's log line says which model and version the label was for."""
    context = request_context_var.get()
    if context is not None and row is not None:
        context.model, context.version, context.log_only = row.model, row.version, True


def feedback_router() -> APIRouter:
    """POST /v1/feedback; the app includes it behind the caller guard."""
    router = APIRouter()

    @router.post(
        "/v1/feedback",
        response_model=FeedbackAnswer,
        summary="Record the outcome (label or reward) of an answered prediction",
    )
    async def post_feedback(request: Request) -> Response:
        services = services_of(request.app)
        feedback = parse_feedback(await read_json_body(request, services.settings.limits))
        engine = services.database
        found = await _locate(request, engine, feedback.request_id)
        if found is None:
            raise ApiError(
                404, f"no prediction with request_id {feedback.request_id!r}", "not_found"
            )
        _name_in_log_line(found)  # also on a 422 below: the line says which model it was
        index = feedback.index
        if index is None:
            if found.batch_size > 1:
                raise ApiError(
                    422,
                    f"index: required, request {feedback.request_id!r} scored "
                    f"{found.batch_size} records (index 0..{found.batch_size - 1})",
                    "invalid_input",
                )
            index = 0
        elif index >= found.batch_size:
            raise ApiError(
                422,
                f"index: {index} out of range, request {feedback.request_id!r} scored "
                f"{found.batch_size} record(s)",
                "invalid_input",
            )
        row = await run_in_threadpool(_store, engine, feedback, index)
        _name_in_log_line(row)
        if row is None:  # a failed request's single row has index 0, so this means a race lost
            raise ApiError(404, f"no prediction {feedback.request_id!r}[{index}]", "not_found")
        answer = FeedbackAnswer(
            request_id=feedback.request_id,
            index=index,
            model=row.model,
            version=row.version,
            label=row.label,
            reward=row.reward,
            updates=row.feedback_updates,
        )
        return json_response(answer.model_dump())

    return router
