"""Who may call the logic tier, how often, and from which browser origins.

Callers of predict, feedback and evaluation present an API key, either as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (never in the query
string: URLs end up in access logs and proxies). Keys are compared in constant
time against every configured key, so neither the answer nor its timing says
how much of a guess was right, and a key is never written to a log or an
answer. With no key configured, auth is off: ``./scripts/up`` must work with
no file at all, and the local stack binds to 127.0.0.1.

Each caller (its key, or its address when auth is off) has a token bucket
refilled at ``rate_limit_per_s``; an empty bucket answers 429 with the JSON
error body and ``Retry-After``. Buckets live in the app (one per worker), so
with N workers the fleet admits up to N times the rate; see docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware

from logic_service.api_errors import ApiError
from logic_service.settings import SecuritySettings

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
    """The credential a caller sent: a bearer token, else the X-API-Key header, else ''."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
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
    """The FastAPI dependency of caller-facing routes: API key first, then the rate limit."""

    def __init__(self, settings: SecuritySettings) -> None:
        self._keys = [k.get_secret_value() for k in settings.api_keys if k.get_secret_value()]
        rate = settings.rate_limit_per_s
        burst = settings.rate_limit_burst or rate
        self._limiter = RateLimiter(rate, burst) if rate > 0 else None

    @property
    def auth_enabled(self) -> bool:
        return bool(self._keys)

    async def __call__(self, request: Request) -> None:
        caller = self.identify(request)
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

    def identify(self, request: Request) -> str:
        """The caller's bucket name; 401 when auth is on and the key is missing or wrong."""
        if not self._keys:
            return f"addr:{request.client.host if request.client else '-'}"
        given = presented_secret(request)
        index = matching_key(given, self._keys) if given else None
        if index is None:
            raise ApiError(
                401,
                "missing or invalid API key: send Authorization: Bearer <key> or X-API-Key: <key>"
                if given
                else "this endpoint needs an API key: "
                "send Authorization: Bearer <key> or X-API-Key: <key>",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )
        return f"key:{index}"  # the index, never the key, names the bucket


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
