"""``python -m logic_service rollout status|set|promote|rollback|switch|versions|pin|unpin``.

A thin client of the admin API, so the CLI and HTTP callers go through the
same validation, the same database write and the same event history. URL and
token as every admin subcommand finds them (``admin_client``: flags,
``TIERKIT_ADMIN_URL`` / ``TIERKIT_ADMIN_TOKEN`` or ``TIERKIT_ADMIN_TOKEN_FILE``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from logic_service.cli import admin_client


def configure(parser: argparse.ArgumentParser) -> None:
    admin_client.add_connection_flags(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="spec, state and recent transitions")
    status.add_argument("model")
    setter = actions.add_parser("set", help="replace the rollout (a canary restarts)")
    setter.add_argument("model")
    source = setter.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", help='rollout as JSON, e.g. \'{"strategy": "split", ...}\'')
    source.add_argument("--file", type=Path, help="rollout as a JSON or YAML file")
    setter.add_argument("--reason", help="recorded with the change")
    versions = actions.add_parser("versions", help="published, loaded, in use and why")
    versions.add_argument("model")
    pin = actions.add_parser("pin", help="keep a published version loaded (loads it first)")
    pin.add_argument("model")
    pin.add_argument("version", type=int)
    pin.add_argument("--reason", help="recorded with the pin")
    unpin = actions.add_parser("unpin", help="release an operator pin")
    unpin.add_argument("model")
    unpin.add_argument("version", type=int)
    for action, text in (
        ("promote", "canary: next stage now"),
        ("rollback", "canary: all traffic back to the baseline"),
        ("switch", "blue-green: swap active and standby"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("model")
        command.add_argument("--reason", help="recorded with the transition")


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is not None:
        import yaml

        try:
            data = yaml.safe_load(args.file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"--file {args.file}: cannot read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ValueError(f"--file {args.file}: not valid JSON or YAML: {exc}") from exc
    else:
        try:
            data = json.loads(args.spec)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--spec: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("the rollout must be a mapping of settings")
    if args.reason:
        data["reason"] = args.reason
    return data


def _summary(view: dict[str, Any]) -> str:
    spec, state = view["spec"], view["state"]
    lines = [f"model {view['model']}: {spec['strategy']} (revision {view['revision']})"]
    details = {
        "split": lambda: f"weights {spec['weights']} by {spec['key']}",
        "canary": lambda: (
            f"baseline {spec['baseline'] or 'stable'} -> candidate {spec['candidate']}; "
            + (
                "stage {stage} of {n}, {status}: {reason}".format(
                    n=len(spec["stages"]), **state["canary"]
                )
                if "canary" in state
                else "not started"
            )
        ),
        "blue_green": lambda: f"active {spec['active']}, standby {spec['standby']}",
        "bandit": lambda: f"arms {spec['arms']}, evidence {state.get('bandit', {})}",
    }
    if spec["strategy"] in details:
        lines.append("  " + details[spec["strategy"]]())
    lines.append(f"  serving versions {view['serving']}")
    for warning in view.get("warnings", []):
        lines.append(f"  WARNING {warning['message']}")
    for pair in view.get("shadow", []):
        lines.append(
            f"  shadow {pair['primary']} -> {pair['shadow']}: {pair['compared']} compared, "
            f"agreement {pair['agreement_rate']}"
        )
    for event in view["events"][-10:]:
        lines.append(f"  event {event['kind']}: {event['reason']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    connection = admin_client.connect(args)
    if connection is None:
        return 2
    path = f"/admin/rollouts/{args.model}"
    try:
        body = _spec(args) if args.action == "set" else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action in ("promote", "rollback", "switch"):
        method, path, body = "POST", f"{path}/{args.action}", {"reason": args.reason}
    elif args.action in ("versions", "pin", "unpin"):
        method = {"versions": "GET", "pin": "PUT", "unpin": "DELETE"}[args.action]
        path = f"/admin/models/{args.model}/" + (
            "versions" if args.action == "versions" else f"pins/{args.version}"
        )
        body = {"reason": args.reason} if args.action == "pin" else None
    else:
        method = "PUT" if args.action == "set" else "GET"
    # set and pin may wait for a version to load (graph_config.pin_wait_s, 60 s)
    timeout = 120 if args.action in ("set", "pin") else 30
    answer = admin_client.call(connection, method, path, body, timeout)
    if answer is None:
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(_versions(answer) if "in_use" in answer else _summary(answer))
    return 0


def _versions(view: dict[str, Any]) -> str:
    lines = [
        f"model {view['model']}: published {view['published']}, loaded {view['loaded']}, "
        f"ready {view['ready']}"
    ]
    for item in view["in_use"]:
        lines.append(f"  in use {item['version']}: " + "; ".join(u["why"] for u in item["uses"]))
    if not view["in_use"]:
        lines.append("  nothing in use: models.config's policy alone decides what is loaded")
    if not view["pinning"]:
        lines.append("  pinning is off (graph_config.effective_file is unset)")
    return "\n".join(lines)
