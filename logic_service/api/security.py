"""Who may call the logic tier, how often, and from which browser origins.

Callers of predict, feedback, evaluation and the dashboard present an API key,
as ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or (a browser opening
the dashboard) HTTP Basic with the key as password; never in the query string:
URLs end up in access logs and proxies. Each route needs a scope
(``CallerGuard``). Keys are compared in constant time against every configured
key, so neither the answer nor its timing says how much of a guess was right,
and a key is never written to a log or an answer. With no key configured, auth
is off: ``./scripts/up`` must work with no file at all, and the local stack
binds to 127.0.0.1.

Each caller (its key, or its address when auth is off) has a token bucket
refilled at ``rate_limit_per_s``; an empty bucket answers 429 with the JSON
error body and ``Retry-After``. Buckets live in the app (one per worker), so
with N workers the fleet admits up to N times the rate; see docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from pydantic import SecretStr
from starlette.middleware.cors import CORSMiddleware

from logic_service.errors import ApiError
from logic_service.settings import ALL_SCOPES, Scope, SecuritySettings

API_KEY_HEADER = "x-api-key"
# An attacker rotating addresses must not grow the bucket table without bound.
MAX_BUCKETS = 10_000


def secrets_match(given: str, expected: str) -> bool:
    """Constant-time equality of two secrets (one helper for API keys and the admin token).

    Both sides are hashed first so the comparison time does not even depend on
    the lengths, and non-ASCII input cannot raise.
    """
    given_digest = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    expected_digest = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given_digest, expected_digest)


def presented_secret(request: Request) -> str:
    """The credential a caller sent: a bearer token, else HTTP Basic's password (what a
    browser sends for the dashboard), else the X-API-Key header, else ''."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if scheme.lower() == "basic" and token.strip():
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2].strip()  # the user name is not checked
    return request.headers.get(API_KEY_HEADER, "").strip()


def matching_key(given: str, keys: list[str]) -> int | None:
    """Index of the configured key equal to ``given``; every key is compared (no early exit)."""
    found: int | None = None
    for index, key in enumerate(keys):
        if secrets_match(given, key) and found is None:
            found = index
    return found


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per caller: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str, now: float | None = None) -> float:
        """0 when admitted, else the seconds until a token is there (for Retry-After)."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(caller, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[caller] = bucket  # most recently used last
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


class CallerGuard:
    """The FastAPI dependencies of caller-facing routes: a key with the route's scope, then
    the rate limit (one set of buckets per key, whichever route it calls).

    Scopes (``Scope``): ``predict``, ``feedback`` and ``read`` (the dashboard page, its
    feed and the evaluation endpoint: the prediction log's numbers). A key written as a
    plain string has all three; ``{key, scopes}`` narrows it (a dashboard's read-only
    key). The admin token may ``read`` as well: whoever may move traffic may see it.
    With no API key configured, every caller-facing route is open (the local default).
    """

    def __init__(self, settings: SecuritySettings, admin_token: SecretStr | None = None) -> None:
        self._keys: list[tuple[str, frozenset[str]]] = []
        for entry in settings.api_keys:
            secret, scopes = (
                (entry, ALL_SCOPES)
                if isinstance(entry, SecretStr)
                else (entry.key, frozenset(entry.scopes))
            )
            if secret.get_secret_value():
                self._keys.append((secret.get_secret_value(), scopes))
        self._admin = admin_token.get_secret_value() if admin_token is not None else ""
        rate = settings.rate_limit_per_s
        burst = settings.rate_limit_burst or rate
        self._limiter = RateLimiter(rate, burst) if rate > 0 else None

    @property
    def auth_enabled(self) -> bool:
        return bool(self._keys)

    def require(self, scope: Scope, *, browser: bool = False) -> Callable[[Request], Any]:
        """The dependency of routes that need ``scope``; ``browser``: a page a person opens,
        so a refusal asks the browser for credentials (HTTP Basic, the key as password)."""

        async def guard(request: Request) -> None:
            caller = self.identify(request, scope, browser)
            if self._limiter is not None:
                wait = self._limiter.take(caller)
                if wait > 0:
                    raise ApiError(
                        429,
                        f"rate limit of {self._limiter.rate:g} requests/s exceeded; "
                        f"retry in {wait:.2f}s",
                        "rate_limited",
                        {"Retry-After": str(max(1, math.ceil(wait)))},
                    )

        return guard

    def identify(self, request: Request, scope: Scope = "predict", browser: bool = False) -> str:
        """The caller's bucket name; 401 for a missing or wrong key, 403 for a key
        without ``scope``, when auth is on."""
        if not self._keys:
            return f"addr:{request.client.host if request.client else '-'}"
        given = presented_secret(request)
        index = matching_key(given, [key for key, _ in self._keys]) if given else None
        if index is None:
            if scope == "read" and self._admin and given and secrets_match(given, self._admin):
                return "admin"
            challenge = 'Basic realm="tierkit", charset="UTF-8"' if browser else "Bearer"
            raise ApiError(
                401,
                "missing or invalid API key: send Authorization: Bearer <key> or X-API-Key: <key>"
                if given
                else "this endpoint needs an API key: "
                "send Authorization: Bearer <key> or X-API-Key: <key>",
                "unauthorized",
                {"WWW-Authenticate": challenge},
            )
        if scope not in self._keys[index][1]:
            raise ApiError(
                403,
                f"this API key may not {scope}: its scopes are "
                f"{', '.join(sorted(self._keys[index][1]))}",
                "forbidden",
            )
        return f"key:{index}"  # the index, never the key, names the bucket


def metrics_guard(settings: SecuritySettings) -> Callable[[Request], Any]:
    """``/metrics``'s dependency: open, or ``Authorization: Bearer <metrics_token>``.

    A token of its own, not an API key: the scraper must not be able to predict,
    and a caller must not read every version's traffic from the scrape.
    """
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""

    async def guard(request: Request) -> None:
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets_match(given.strip(), token):
            raise ApiError(
                401,
                "/metrics needs the header Authorization: Bearer <metrics token>",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )

    return guard


def install_cors(app: FastAPI, settings: SecuritySettings) -> None:
    """CORS only for the configured origins; none configured means no CORS headers at all."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Server-Timing", "Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
