"""Requests per request API, model version and route (routed or pinned), from the prediction log.

What the dashboard's "API versions" panel shows: is the old API still
called, by whom is each model version reached, and how much of it comes from
callers that pinned a version. Read from the shared database like every
other panel, so any worker's answer shows every worker's traffic; one
grouped query over the model's ``(model, ts)`` index range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from logic_service.api_config import DEFAULT_API_VERSION
from logic_service.api_versions import ApiCatalog, api_order
from logic_service.pinned_predict import PINNED
from logic_service.prediction_log import predictions, utc


@dataclass(frozen=True)
class ApiTraffic:
    api_version: str
    version: int | None  # None: failed before a version was chosen (410, 404, 503...)
    routed: int
    pinned: int
    errors: int  # answered 5xx


def api_traffic(engine: Engine, model: str, since: datetime) -> list[ApiTraffic]:
    """HTTP requests (a batch counts once) since ``since``; rows from before API versions are v1."""
    table = predictions
    api = func.coalesce(table.c.api_version, DEFAULT_API_VERSION)
    pinned = case((table.c.strategy == PINNED, 1), else_=0)
    failed = case((table.c.status >= 500, 1), else_=0)
    query = (
        select(
            api.label("api"),
            table.c.version,
            func.count().label("requests"),
            func.sum(pinned).label("pinned"),
            func.sum(failed).label("errors"),
        )
        .where(table.c.model == model, table.c.ts >= utc(since), table.c.record_index == 0)
        .group_by(api, table.c.version)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    found = [
        ApiTraffic(
            row.api,
            int(row.version) if row.version is not None else None,
            int(row.requests) - int(row.pinned or 0),
            int(row.pinned or 0),
            int(row.errors or 0),
        )
        for row in rows
    ]
    return sorted(found, key=lambda t: (api_order(t.api_version), t.version or -1))


def api_panel(
    catalog: ApiCatalog, engine: Engine | None, model: str, now: datetime, window_s: int
) -> dict[str, Any]:
    """The panel: each API (versions, deprecation, retirement) and its last-minute traffic."""
    traffic: Any
    if engine is None:
        traffic = {"error": "traffic unavailable: no prediction log database"}
    else:
        since = now - timedelta(seconds=window_s)
        traffic = [asdict(t) for t in api_traffic(engine, model, since)]
    return {"window_s": window_s, "apis": catalog.describe(model), "traffic": traffic}
