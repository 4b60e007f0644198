"""The ``api_versions`` section of a model in logic.yaml: how each input-schema API is announced.

An API version (``v1``, ``v2``...) is the request schema callers write against;
which model versions accept it is written in their manifests (``api_version``,
see docs/manifest.md), so this section holds only what the operator decides:
that an API is deprecated, since when, until when it is promised
(``sunset``), and what replaces it. Kept apart from ``settings`` as
``rollout`` is, so the same validator guards the file and the tests.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from export.manifest import API_VERSION_PATTERN, DEFAULT_API_VERSION

__all__ = [
    "API_VERSION_PATTERN",
    "DEFAULT_API_VERSION",
    "ApiVersionSettings",
    "check_api_versions",
    "is_api_version",
]

# ``v`` and a number: one URL segment that can never be mistaken for a model or a route name.
_API_VERSION = re.compile(API_VERSION_PATTERN)


def is_api_version(text: str) -> bool:
    return bool(_API_VERSION.match(text))


def _utc(value: Any) -> Any:
    """YAML gives ``2027-06-30`` as a date: that day's midnight, UTC; naive times are UTC."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class ApiVersionSettings(BaseModel):
    """One API version of one model, as the operator announces it."""

    model_config = ConfigDict(extra="forbid")

    deprecated: datetime | None = Field(
        None,
        description="Deprecated since (a date or time, UTC unless it says otherwise): answers "
        "carry `Deprecation: @<unix seconds>` (RFC 9745).",
    )
    sunset: datetime | None = Field(
        None, description="When the API may stop answering: `Sunset: <HTTP-date>` (RFC 8594)."
    )
    successor: str | None = Field(
        None,
        pattern=API_VERSION_PATTERN,
        description='The API that replaces it: `Link: </v2/models/ctr/predict>; rel="successor-'
        'version"`.',
    )
    link: str | None = Field(
        None,
        max_length=2000,
        description='Where callers read about the change: `Link: <url>; rel="deprecation"`.',
    )

    @field_validator("deprecated", "sunset", mode="before")
    @classmethod
    def _as_utc(cls, value: Any) -> Any:
        return _utc(value)

    @field_validator("deprecated", "sunset")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @field_validator("link")
    @classmethod
    def _no_header_breaking(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in '<>\r\n" '):
            raise ValueError("must be a URL without spaces, quotes, angle brackets or newlines")
        return value

    @model_validator(mode="after")
    def _announced_before_sunset(self) -> ApiVersionSettings:
        if self.sunset is not None and self.deprecated is None:
            raise ValueError("sunset needs deprecated: an API is deprecated before its sunset")
        if (
            self.sunset is not None
            and self.deprecated is not None
            and self.sunset < self.deprecated
        ):
            raise ValueError("sunset must not be before deprecated")
        return self


def check_api_versions(versions: dict[str, ApiVersionSettings]) -> dict[str, ApiVersionSettings]:
    """Keys are API versions; a successor must not be the API itself."""
    for name, spec in versions.items():
        if not is_api_version(name):
            raise ValueError(f"{name!r} is not an API version: use v1, v2, ... (v and a number)")
        if spec.successor == name:
            raise ValueError(f"{name}: successor must be another API version")
    return versions
