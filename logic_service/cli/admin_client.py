"""Calling the admin API from the command line: the URL, the token, one request, its refusal.

``rollout`` and ``api`` are thin clients of the admin API (so the CLI and HTTP
callers share validation, database writes and history); what they share of
being a client is here, so both find the URL and the token the same way and
report a refusal the same way. URL and token come from flags or
``TIERKIT_ADMIN_URL`` / ``TIERKIT_ADMIN_TOKEN`` (or the file named by
``TIERKIT_ADMIN_TOKEN_FILE``, which the compose stack sets in the logic
container, so ``docker compose exec logic python -m logic_service rollout ...``
needs no token typed); prefer the variable: a flag shows in the process list.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_ENV = "TIERKIT_ADMIN_URL"
TOKEN_ENV = "TIERKIT_ADMIN_TOKEN"
TOKEN_FILE_ENV = "TIERKIT_ADMIN_TOKEN_FILE"
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Connection:
    url: str  # the logic tier's base URL, no trailing slash
    token: str


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"logic tier base URL (default ${URL_ENV} or {DEFAULT_URL})")
    parser.add_argument("--token", help=f"admin token (default ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the full JSON answer")


def connect(args: argparse.Namespace) -> Connection | None:
    """URL and token from the flags or the environment; None (said on stderr) without a token."""
    url = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    token = args.token or os.environ.get(TOKEN_ENV) or _token_from_file()
    if not token:
        print(
            f"error: no admin token: pass --token or set {TOKEN_ENV} (or {TOKEN_FILE_ENV})",
            file=sys.stderr,
        )
        return None
    return Connection(url, token)


def call(
    connection: Connection, method: str, path: str, body: Any, timeout: float
) -> dict[str, Any] | None:
    """The answer of ``method path`` (path from the base URL); None (said on stderr) unless 200."""
    import httpx

    try:
        response = httpx.request(
            method,
            f"{connection.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {connection.token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the logic tier at {connection.url}: {exc}", file=sys.stderr)
        return None
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": {"message": response.text[:500]}}
    if response.status_code != 200:
        message = answer.get("error", {}).get("message", response.text[:500])
        print(f"error: HTTP {response.status_code}: {message}", file=sys.stderr)
        return None
    return answer


def _token_from_file() -> str | None:
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        print(f"error: {TOKEN_FILE_ENV}={path}: {exc.strerror or exc}", file=sys.stderr)
        return None
