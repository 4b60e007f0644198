"""Load-test a tierkit deployment (or any endpoint taking the demo record) with locust.

The request mix is the benchmark's (``python -m bench stack``): single raw
records POSTed to the logic tier's ``/v1/models/ctr/predict``, here varied the
way real traffic varies -- user ids, birthdays, install times, apps, channels,
countries, devices and screens drawn from the demo model's vocabularies -- so
caches and branches see what production sees. Every answer must be a 200 with
a ``prediction``; anything else counts as a failure with its status and body.

    .venv/bin/locust -f locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 16 -r 16 -t 30s

Environment: ``TIERKIT_MODEL`` (default ``ctr``), ``TIERKIT_API_KEY`` (sent as
``X-API-Key`` when the logic tier has ``security.api_keys``),
``TIERKIT_BATCH`` (records per request; 1 sends one record, more send
``{"records": [...]}``).
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import FastHttpUser, between, task

MODEL = os.environ.get("TIERKIT_MODEL", "ctr")
BATCH = max(1, int(os.environ.get("TIERKIT_BATCH", "1")))
API_KEY = os.environ.get("TIERKIT_API_KEY", "")

APPS = (20000, 20001, 20002, 20010)
CHANNELS = (1, 2, 3, 4, 5)
COUNTRIES = (182, 45, 99, 12, 230)
LANGUAGES = ("20", "1", "7", "13", "5")
EVENT_TYPES = (6, 1, 2, 4, 8)
STONE_VERSIONS = ("other", "v1", "v2", "v3")
PLATFORMS = (1, 2, 3)
SCREENS = ("720*1440", "1080*1920", "1080*2340", "750*1334", "480*854")
DEVICES = (
    "TECNO-BB4k",
    "TECNO-KC8",
    "INFINIX-X657",
    "ITEL-A56",
    "SAMSUNG-SM-A105F",
    "XIAOMI-REDMI-9A",
    "HUAWEI-Y6P",
)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def record(rng: random.Random) -> dict[str, Any]:
    """One raw record shaped like ``logic_service.features.ctr.EXAMPLE_REQUEST``."""
    now = datetime.now(UTC)
    return {
        "userId": rng.randrange(1, 2**40),
        "birthday": _timestamp(now - timedelta(days=rng.uniform(14, 70) * 365.25)),
        "appId": rng.choice(APPS),
        "channel": rng.choice(CHANNELS),
        "countryId": rng.choice(COUNTRIES),
        "createTime": _timestamp(now - timedelta(days=rng.expovariate(1 / 400))),
        "languageId": rng.choice(LANGUAGES),
        "type": rng.choice(EVENT_TYPES),
        "stoneVersion": rng.choice(STONE_VERSIONS),
        "platformType": rng.choice(PLATFORMS),
        "screenSize": rng.choice(SCREENS),
        "deviceName": rng.choice(DEVICES),
    }


class LogicTierUser(FastHttpUser):
    """A client calling predict back to back (closed loop, like the benchmark)."""

    wait_time = between(0, 0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.headers = {"Content-Type": "application/json"}
        if API_KEY:
            self.headers["X-API-Key"] = API_KEY

    @task
    def predict(self) -> None:
        if BATCH == 1:
            body: Any = record(self.rng)
            wanted = "prediction"
        else:
            body = {"records": [record(self.rng) for _ in range(BATCH)]}
            wanted = "predictions"
        with self.client.post(
            f"/v1/models/{MODEL}/predict",
            json=body,
            headers=self.headers,
            name=f"/v1/models/{MODEL}/predict",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}: {(answer.text or '')[:200]}")
                return
            try:
                ok = wanted in answer.json()
            except ValueError:
                ok = False
            if not ok:
                answer.failure(f"no {wanted!r} in the answer: {(answer.text or '')[:200]}")
