"""Features of the demo click-through-rate model.

The raw request is an app-install event; the model wants numbers. ``derive``
turns one raw record into named derived features (plain Python, no pandas, so
it is cheap per request); the fitted scikit-learn transformer saved with each
model version then scales and one-hot encodes them. ``scripts/train_demo.py``
fits on exactly this function's output, so serving cannot drift from training.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FUNCTION_PATH = "logic_service.features.ctr:derive"

NUMERIC_FEATURES: tuple[str, ...] = (
    "age_years",
    "account_age_days",
    "screen_area",
    "screen_aspect",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "app_id",
    "channel",
    "country_id",
    "language_id",
    "event_type",
    "stone_version",
    "platform_type",
    "device_brand",
)

_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$"

# JSON Schema of one raw record. The export tool writes it into the manifest;
# the logic tier validates every request against the manifest of the version
# that will serve it.
INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ctr raw request",
    "type": "object",
    "required": [
        "userId",
        "birthday",
        "appId",
        "channel",
        "countryId",
        "createTime",
        "languageId",
        "type",
        "stoneVersion",
        "platformType",
        "screenSize",
        "deviceName",
    ],
    "properties": {
        "userId": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "birthday": {"type": "string", "pattern": _TIMESTAMP, "maxLength": 40},
        "appId": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "channel": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "countryId": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "createTime": {"type": "string", "pattern": _TIMESTAMP, "maxLength": 40},
        "languageId": {"type": "string", "minLength": 1, "maxLength": 16},
        "type": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "stoneVersion": {"type": "string", "minLength": 1, "maxLength": 32},
        "platformType": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "screenSize": {"type": "string", "pattern": r"^\d{1,5}\*\d{1,5}$"},
        "deviceName": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "additionalProperties": True,
}

EXAMPLE_REQUEST: dict[str, Any] = {
    "userId": 102079311,
    "birthday": "1995-04-29T00:00:00.000+0000",
    "appId": 20000,
    "channel": 1,
    "countryId": 182,
    "createTime": "2020-11-02T02:51:19.000+0000",
    "languageId": "20",
    "type": 6,
    "stoneVersion": "other",
    "platformType": 2,
    "screenSize": "720*1440",
    "deviceName": "TECNO-BB4k",
}

_SECONDS_PER_DAY = 86_400.0
_DAYS_PER_YEAR = 365.2425


def parse_timestamp(text: str) -> datetime:
    """Parse the request's timestamps (``1995-04-29T00:00:00.000+0000`` and ISO 8601).

    Naive times are taken as UTC, as the upstream event log writes them.
    """
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _screen(size: str) -> tuple[float, float]:
    width, _, height = size.partition("*")
    w, h = float(width), float(height)
    area = w * h
    aspect = max(w, h) / min(w, h) if min(w, h) > 0 else 0.0
    return area, aspect


def derive(record: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One raw record -> the derived features the transformer was fitted on.

    ``now`` pins the reference time (tests, training); serving passes nothing
    and ages are counted to the current UTC time, in whole days so a score is
    stable within a day.
    """
    reference = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    birthday = parse_timestamp(record["birthday"])
    created = parse_timestamp(record["createTime"])
    area, aspect = _screen(record["screenSize"])
    device = str(record["deviceName"])
    return {
        "age_years": (reference - birthday).total_seconds() / _SECONDS_PER_DAY / _DAYS_PER_YEAR,
        "account_age_days": (reference - created).total_seconds() / _SECONDS_PER_DAY,
        "screen_area": area,
        "screen_aspect": aspect,
        "app_id": str(record["appId"]),
        "channel": str(record["channel"]),
        "country_id": str(record["countryId"]),
        "language_id": str(record["languageId"]),
        "event_type": str(record["type"]),
        "stone_version": str(record["stoneVersion"]),
        "platform_type": str(record["platformType"]),
        "device_brand": device.split("-", 1)[0].strip().upper() or "UNKNOWN",
    }


def build_transformer() -> Any:
    """The unfitted transformer: impute and scale numbers, one-hot categories.

    Unknown categories at serving time encode as all zeros rather than failing
    the request.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype="float32")
    return ColumnTransformer(
        [
            ("numeric", numeric, list(NUMERIC_FEATURES)),
            ("categorical", categorical, list(CATEGORICAL_FEATURES)),
        ],
        sparse_threshold=0.0,
    )
