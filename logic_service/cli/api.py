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
import sys
from typing import Any

from logic_service.cli import admin_client
from logic_service.settings.api_versions import is_api_version

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    admin_client.add_connection_flags(parser)
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
    connection = admin_client.connect(args)
    if connection is None:
        return EXIT_BAD_INPUT
    path = f"/admin/apis/{args.model}"
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
    answer = admin_client.call(connection, method, path, body, 30)
    if answer is None:
        return EXIT_REFUSED
    print(json.dumps(answer, indent=2) if args.json else _summary(answer))
    return EXIT_OK
