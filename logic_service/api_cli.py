"""``python -m logic_service api status|retire|restore MODEL [API]``: request API versions.

A client of ``/admin/apis`` (as ``rollout`` is of ``/admin/rollouts``), so the
CLI and HTTP callers share the traffic check, the database write and the
log line. URL and token come from the same flags and variables as
``rollout`` (``TIERKIT_ADMIN_URL``, ``TIERKIT_ADMIN_TOKEN`` or
``TIERKIT_ADMIN_TOKEN_FILE``).

Exit codes: 0 done, 1 refused by the logic tier (e.g. 409: the API still had
traffic within the window) or unreachable, 2 bad input (no token, an API
that is not ``v`` and a number).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from logic_service.api_config import is_api_version
from logic_service.rollout_cli import DEFAULT_URL, TOKEN_ENV, TOKEN_FILE_ENV, URL_ENV

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help=f"logic tier base URL (default ${URL_ENV} or {DEFAULT_URL})")
    parser.add_argument("--token", help=f"admin token (default ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the full JSON answer")
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="each API: versions, deprecation, traffic")
    status.add_argument("model")
    for action, text in (
        ("retire", "stop serving an API (refused while it had traffic within the window)"),
        ("restore", "serve a retired API again"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("model")
        command.add_argument("api_version", metavar="API", help="v1, v2, ...")
        command.add_argument("--reason", help="recorded with the change")


def _summary(view: dict[str, Any]) -> str:
    lines = [f"model {view['model']}: traffic window {view['retire_window_s']:g} s"]
    for api in view["apis"]:
        versions = ", ".join(map(str, api["versions"])) or "none loaded"
        state = "serving"
        if api["retired"]:
            state = f"retired {api['retired']['retired_at']} ({api['retired']['reason']})"
        elif api["deprecated"]:
            state = f"deprecated since {api['deprecated']}"
            state += f", sunset {api['sunset']}" if api["sunset"] else ""
            state += f", successor {api['successor']}" if api["successor"] else ""
        count = api["requests_in_window"]
        lines.append(
            f"  {api['api_version']:<4} {api['path']}: versions {versions}; {state}; "
            f"{count} request{'' if count == 1 else 's'} in the window"
            + (f" (last {api['last_request']})" if api["last_request"] else "")
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import httpx

    url = (args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    token = args.token or os.environ.get(TOKEN_ENV) or _token_from_file()
    if not token:
        print(
            f"error: no admin token: pass --token or set {TOKEN_ENV} (or {TOKEN_FILE_ENV})",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    path = f"{url}/admin/apis/{args.model}"
    method, body = "GET", None
    if args.action in ("retire", "restore"):
        if not is_api_version(args.api_version):
            print(
                f"error: {args.api_version!r} is not an API version: use v1, v2, ...",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        method, path = "POST", f"{path}/{args.api_version}/{args.action}"
        body = {"reason": args.reason} if args.reason else None
    try:
        response = httpx.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the logic tier at {url}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": {"message": response.text[:500]}}
    if response.status_code != 200:
        message = answer.get("error", {}).get("message", response.text[:500])
        print(f"error: HTTP {response.status_code}: {message}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(answer, indent=2) if args.json else _summary(answer))
    return EXIT_OK


def _token_from_file() -> str | None:
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        print(f"error: {TOKEN_FILE_ENV}={path}: {exc.strerror or exc}", file=sys.stderr)
        return None
