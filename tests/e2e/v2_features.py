"""API v2 of a ctr-like model: another request shape, and a feature function of its own.

The v2 request renames fields (``user_id``, ``birth_date``...), nests the
screen and the device, and names the platform instead of numbering it; its
feature function also derives the device brand differently, so a v2 model
version is fitted on columns a v1 pipeline never produces. A logic tier that
ran the v1 pipeline for a v2 version (or the other way round) would either
refuse the record or score it differently from the model in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logic_service.features import ctr

FUNCTION_PATH = "e2e.v2_features:derive"
_TIMESTAMP = ctr.INPUT_SCHEMA["properties"]["birthday"]
_COUNT = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 64}
PLATFORMS = {"ios": 1, "android": 2}

INPUT_SCHEMA: dict[str, Any] = {
    "title": "ctr raw request, API v2",
    "type": "object",
    "required": [
        "user_id",
        "birth_date",
        "app",
        "channel",
        "country",
        "installed_at",
        "language",
        "event_type",
        "stone_version",
        "platform",
        "screen",
        "device",
    ],
    "properties": {
        "user_id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "birth_date": _TIMESTAMP,
        "app": _COUNT,
        "channel": _COUNT,
        "country": _COUNT,
        "installed_at": _TIMESTAMP,
        "language": _TEXT,
        "event_type": _COUNT,
        "stone_version": _TEXT,
        "platform": {"type": "string", "enum": sorted(PLATFORMS)},
        "screen": {
            "type": "object",
            "required": ["width", "height"],
            "properties": {
                "width": {"type": "integer", "minimum": 1, "maximum": 99_999},
                "height": {"type": "integer", "minimum": 1, "maximum": 99_999},
            },
            "additionalProperties": False,
        },
        "device": {
            "type": "object",
            "required": ["brand", "model"],
            "properties": {"brand": _TEXT, "model": {"type": "string", "maxLength": 64}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


def from_v1(record: Mapping[str, Any]) -> dict[str, Any]:
    """The same event as a v2 caller sends it."""
    width, _, height = str(record["screenSize"]).partition("*")
    brand, _, model = str(record["deviceName"]).partition("-")
    platform = next(name for name, number in PLATFORMS.items() if number == record["platformType"])
    return {
        "user_id": record["userId"],
        "birth_date": record["birthday"],
        "app": record["appId"],
        "channel": record["channel"],
        "country": record["countryId"],
        "installed_at": record["createTime"],
        "language": record["languageId"],
        "event_type": record["type"],
        "stone_version": record["stoneVersion"],
        "platform": platform,
        "screen": {"width": int(width), "height": int(height)},
        "device": {"brand": brand or "unknown", "model": model},
    }


def derive(record: Mapping[str, Any]) -> dict[str, Any]:
    """One v2 record -> the derived features the v2 transformer was fitted on."""
    screen, device = record["screen"], record["device"]
    features = ctr.derive(
        {
            "birthday": record["birth_date"],
            "createTime": record["installed_at"],
            "screenSize": f"{screen['width']}*{screen['height']}",
            "deviceName": device["brand"],
            "appId": record["app"],
            "channel": record["channel"],
            "countryId": record["country"],
            "languageId": record["language"],
            "type": record["event_type"],
            "stoneVersion": record["stone_version"],
            "platformType": PLATFORMS[record["platform"]],
        }
    )
    features["device_brand"] = "v2-" + str(device["brand"]).lower()
    return features


def derive_from_v1(record: Mapping[str, Any]) -> dict[str, Any]:
    """For fitting and sizing with the demo's v1 sample records."""
    return derive(from_v1(record))
