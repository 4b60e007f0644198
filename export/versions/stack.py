"""What only the running stack knows: loaded, ready, in use and why, asked over HTTP.

The export tool is offline and imports no server (an import-linter contract),
so it asks the logic tier's admin API, as ``python -m logic_service rollout``
does, with the same flags and variables: ``--url`` / ``TIERKIT_ADMIN_URL``,
``--token`` / ``TIERKIT_ADMIN_TOKEN`` / ``TIERKIT_ADMIN_TOKEN_FILE``.
``StackUnavailable`` means "cannot learn it": callers decide whether that is
fatal (``prune`` refuses, the listing says "unknown").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

URL_ENV = "TIERKIT_ADMIN_URL"
TOKEN_ENV = "TIERKIT_ADMIN_TOKEN"
TOKEN_FILE_ENV = "TIERKIT_ADMIN_TOKEN_FILE"
DEFAULT_URL = "http://127.0.0.1:8000"
PIN_TIMEOUT_S = 120.0  # a pin waits for the version to load (graph_config.pin_wait_s, 60 s)


class StackUnavailable(Exception):
    """The admin API did not tell what is loaded and in use; the message says why."""


class StackRefused(Exception):
    """The admin API answered, and said no (a pin that cannot load, pinning off...)."""


@dataclass(frozen=True)
class StackView:
    """``GET /admin/models/{model}/versions``, as the export tool uses it."""

    published: list[int]
    loaded: list[int]
    ready: list[int]
    labels: dict[str, int]
    in_use: dict[int, list[dict[str, str]]]  # version -> [{"kind", "why"}]
    pins: list[dict[str, Any]] = field(default_factory=list)
    pinning: bool = True
    routing_labels: dict[str, int] = field(default_factory=dict)  # the graph tier's, now

    @classmethod
    def from_answer(cls, data: dict[str, Any]) -> StackView:
        return cls(
            published=[int(v) for v in data.get("published", [])],
            loaded=[int(v) for v in data.get("loaded", [])],
            ready=[int(v) for v in data.get("ready", [])],
            labels={str(k): int(v) for k, v in (data.get("labels") or {}).items()},
            in_use={int(i["version"]): list(i["uses"]) for i in data.get("in_use", [])},
            pins=list(data.get("pins", [])),
            pinning=bool(data.get("pinning", True)),
            routing_labels={str(k): int(v) for k, v in (data.get("routing_labels") or {}).items()},
        )

    def operator_pins(self) -> set[int]:
        return {int(p["version"]) for p in self.pins if p.get("holder") == "operator"}


def resolve_url(flag: str | None) -> str:
    return (flag or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def resolve_token(flag: str | None) -> str | None:
    """The admin token from the flag, the variable, or the file the variable names."""
    if flag:
        return flag
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise StackUnavailable(f"{TOKEN_FILE_ENV}={path}: {exc.strerror or exc}") from exc


class AdminClient:
    """A few admin API calls, each with a clear error naming the URL and the answer."""

    def __init__(self, url: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout_s = timeout_s

    def _call(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        if not self.token:
            raise StackUnavailable(
                f"no admin token for {self.url}: pass --token or set {TOKEN_ENV} "
                f"(or {TOKEN_FILE_ENV})"
            )
        try:
            answer = httpx.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=timeout_s or self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise StackUnavailable(f"the logic tier at {self.url} did not answer ({exc})") from exc
        try:
            data = answer.json()
        except ValueError:
            data = {}
        if answer.status_code == 200:
            return data
        message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
        text = f"{method} {path}: HTTP {answer.status_code}: {message or answer.text[:300]}"
        if answer.status_code in (401, 403, 404) or answer.status_code >= 500:
            raise StackUnavailable(text)
        raise StackRefused(text)

    def versions(self, model: str) -> StackView:
        return StackView.from_answer(self._call("GET", f"/admin/models/{model}/versions"))

    def rollout(self, model: str) -> dict[str, Any]:
        return self._call("GET", f"/admin/rollouts/{model}")

    def pin(self, model: str, version: int, reason: str) -> StackView:
        data = self._call(
            "PUT", f"/admin/models/{model}/pins/{version}", {"reason": reason}, PIN_TIMEOUT_S
        )
        return StackView.from_answer(data)

    def unpin(self, model: str, version: int) -> None:
        self._call("DELETE", f"/admin/models/{model}/pins/{version}")

    def serving_labels(self, model: str) -> dict[str, int]:
        """Labels the logic tier routes by now (the graph tier's, not models.config's)."""
        return self.versions(model).routing_labels


def wait_for(condition: Any, deadline: float, interval_s: float = 0.5) -> Any:
    """``condition()`` until it is truthy or ``deadline`` (monotonic) passes; its last value."""
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)
