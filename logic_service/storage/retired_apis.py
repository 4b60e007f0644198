"""Retired API versions, in the shared database, and the traffic check that guards retiring one.

An API version is retired per model (``python -m logic_service api retire ctr v1``,
or ``POST /admin/apis/ctr/v1/retire``) and from then on answers 410 Gone on
every replica. Retiring is refused while the prediction log, which every
replica writes, holds a request to that API within ``api_retire_window_s``:
"the old API is served until its traffic is zero" is a fact read from the
log, not an operator's guess. The check reads one index range
(``ix_predictions_model_api_ts``) and counts HTTP requests (``record_index``
0), whatever their status: a caller that still gets 422s is still a caller.
Rows written before API versions existed have no ``api_version``; they all
came through ``/v1`` and count as v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from logic_service.settings.api_versions import DEFAULT_API_VERSION
from logic_service.storage.database import metadata
from logic_service.storage.prediction_log import predictions, utc

retired_apis = Table(
    "retired_apis",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("api_version", String(16), primary_key=True),
    Column("retired_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)


@dataclass(frozen=True)
class Retirement:
    model: str
    api_version: str
    retired_at: datetime
    reason: str

    def public(self) -> dict[str, str]:
        return {
            "api_version": self.api_version,
            "retired_at": self.retired_at.isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Traffic:
    """Requests to one API of one model since ``since``, and the newest one's time."""

    requests: int
    last: datetime | None
    since: datetime


class StillInUse(Exception):
    """The API had requests within the window: retiring it would break live callers."""

    def __init__(self, model: str, api_version: str, traffic: Traffic, window_s: float) -> None:
        last = traffic.last.isoformat(timespec="seconds") if traffic.last else "unknown"
        super().__init__(
            f"API {api_version} of model {model} had {traffic.requests} request"
            f"{'s' if traffic.requests != 1 else ''} within the last {window_s:g} s "
            f"(api_retire_window_s; the last at {last}): it is retired only once nothing has "
            f"called it for that long"
        )
        self.traffic = traffic
        self.window_s = window_s


def _api_filter(api_version: str) -> ColumnElement[bool]:
    column = predictions.c.api_version
    if api_version == DEFAULT_API_VERSION:
        return or_(column == api_version, column.is_(None))
    return column == api_version


def traffic(engine: Engine, model: str, api_version: str, since: datetime) -> Traffic:
    """HTTP requests to ``api_version`` of ``model`` at or after ``since``."""
    query = select(func.count(), func.max(predictions.c.ts)).where(
        predictions.c.model == model,
        _api_filter(api_version),
        predictions.c.ts >= utc(since),
        predictions.c.record_index == 0,
    )
    with engine.connect() as connection:
        count, last = connection.execute(query).one()
    return Traffic(int(count or 0), utc(last) if last is not None else None, utc(since))


def load_retired(engine: Engine) -> dict[str, dict[str, Retirement]]:
    """Every retired API, by model then API version."""
    found: dict[str, dict[str, Retirement]] = {}
    with engine.connect() as connection:
        for row in connection.execute(select(retired_apis)):
            found.setdefault(row.model, {})[row.api_version] = Retirement(
                row.model, row.api_version, utc(row.retired_at), row.reason
            )
    return found


def retire(
    engine: Engine,
    model: str,
    api_version: str,
    window_s: float,
    reason: str,
    now: datetime | None = None,
) -> tuple[Retirement, bool]:
    """Retire the API unless it had traffic within ``window_s``; (retirement, newly retired).

    Raises ``StillInUse``. Retiring twice is not an error: the first retirement stands.
    """
    now = now or datetime.now(UTC)
    existing = load_retired(engine).get(model, {}).get(api_version)
    if existing is not None:
        return existing, False
    seen = traffic(engine, model, api_version, now - timedelta(seconds=window_s))
    if seen.requests:
        raise StillInUse(model, api_version, seen, window_s)
    retirement = Retirement(model, api_version, now, reason)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(retired_apis).values(
                    model=model, api_version=api_version, retired_at=now, reason=reason
                )
            )
    except IntegrityError:  # another replica retired it in the meantime
        stored = load_retired(engine).get(model, {}).get(api_version)
        return (stored or retirement), False
    return retirement, True


def restore(engine: Engine, model: str, api_version: str) -> bool:
    """Serve a retired API again; False when it was not retired."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(retired_apis).where(
                retired_apis.c.model == model, retired_apis.c.api_version == api_version
            )
        )
    return bool(result.rowcount)
