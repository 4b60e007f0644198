"""Requests per request API, model version and route (routed or pinned), from the prediction log.

What the dashboard's "API versions" panel shows: is the old API still
called, by whom is each model version reached, and how much of it comes from
callers that pinned a version. Read from the shared database like every
other panel, so any worker's answer shows every worker's traffic; one
grouped query over the log's 10-second aggregates (``aggregate_reads``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from logic_service.routing.api_versions import ApiCatalog, api_order
from logic_service.routing.pinned import PINNED
from logic_service.settings.api_versions import DEFAULT_API_VERSION
from logic_service.storage.aggregate_reads import api_series


@dataclass(frozen=True)
class ApiTraffic:
    api_version: str
    version: int | None  # None: failed before a version was chosen (410, 404, 503...)
    routed: int
    pinned: int
    errors: int  # answered 5xx


def api_traffic(engine: Engine, model: str, since: datetime, until: datetime) -> list[ApiTraffic]:
    """HTTP requests (a batch counts once) in the window; rows from before API versions are v1."""
    merged: dict[tuple[str, int | None], list[int]] = {}
    for api, version, requests, pinned, errors in api_series(engine, model, since, until, PINNED):
        counts = merged.setdefault((api or DEFAULT_API_VERSION, version), [0, 0, 0])
        counts[0] += requests
        counts[1] += pinned
        counts[2] += errors
    found = [
        ApiTraffic(api, version, requests - pinned, pinned, errors)
        for (api, version), (requests, pinned, errors) in merged.items()
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
        traffic = [asdict(t) for t in api_traffic(engine, model, since, now)]
    return {"window_s": window_s, "apis": catalog.describe(model), "traffic": traffic}
