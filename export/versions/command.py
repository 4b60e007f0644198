"""``python -m export versions``: check the arguments, run one action, print, pick the exit status.

Exit status: 0 done; 2 bad input or a refusal (an ``error: ...`` line, nothing
changed); 141 when stdout is a pipe that closed early (``... | head``), quietly,
as a program killed by SIGPIPE would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.model_config import read_config
from export.options import check_model_name
from export.versions import listing, prune, rollback
from export.versions.disk import scan
from export.versions.stack import AdminClient, StackUnavailable, resolve_token, resolve_url

EXIT_OK = 0
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE


def _check(args: argparse.Namespace) -> Path:
    """Usage rules argparse cannot express; the model's folder."""
    check_model_name(args.name)
    wrong = {
        "--keep": args.keep is not None and args.action != "prune",
        "--dry-run": args.dry_run and args.action != "prune",
        "--stack-down": args.stack_down and args.action != "prune",
        "--to": args.to is not None and args.action != "rollback",
    }
    for flag, misplaced in wrong.items():
        if misplaced:
            owner = "rollback" if flag == "--to" else "prune"
            raise ExportError(f"{flag} belongs to `versions NAME {owner}`, not {args.action}")
    if args.action == "prune" and args.keep is None:
        raise ExportError("prune needs --keep N: how many of the newest versions to keep")
    if args.keep is not None and args.keep < 1:
        raise ExportError(f"--keep {args.keep}: must be at least 1 (the newest version stays)")
    if not args.wait > 0:
        raise ExportError(f"--wait {args.wait:g}: must be a positive number of seconds")
    model_dir = args.repo / args.name
    if not model_dir.is_dir():
        raise ExportError(f"--repo {args.repo}: no model {args.name!r} (no folder {model_dir})")
    return model_dir


def _entry_facts(config: Path, model: str) -> tuple[dict[str, int], str]:
    """The model's labels in models.config and a description of its policy."""
    entry = next((e for e in read_config(config).model_config_list.config if e.name == model), None)
    if entry is None:
        return {}, f"no entry in {config}"
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        text = f"specific {sorted(policy.specific.versions)}"
    elif choice == "all":
        text = "all"
    else:
        text = f"latest {{ num_versions: {max(policy.latest.num_versions, 1)} }}"
    return dict(entry.version_labels), f"{config}: {text}"


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    try:
        print(json.dumps(data, indent=2) if args.json else text, flush=True)
    except BrokenPipeError:
        # The reader left (`| head`): no traceback, and none again when Python flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return EXIT_OK


def _prune(args: argparse.Namespace, model_dir: Path, client: AdminClient) -> int:
    labels, _ = _entry_facts(args.config, args.name)
    on_disk = scan(model_dir)
    if args.stack_down:
        stack, basis = None, f"--stack-down: only the labels of {args.config} and the disk"
    else:
        try:
            stack = client.versions(args.name)
        except StackUnavailable as exc:
            raise ExportError(
                f"prune: cannot learn which versions are in use: {exc}. Nothing removed. Start "
                "the stack (or point --url / TIERKIT_ADMIN_URL at it), or pass --stack-down if "
                "no graph tier serves this repository"
            ) from exc
        prune.check_same_repository(on_disk, stack, client.url)
        basis = f"in use as the stack at {client.url} says"
    plan = prune.plan_prune(model_dir, on_disk, args.keep, labels, stack, basis)
    if args.dry_run:
        result = prune.PruneResult(plan, dry_run=True)
    else:

        def still_needed() -> dict[int, list[str]]:
            try:
                return prune.needed_by_stack(client.versions(args.name))
            except StackUnavailable as exc:
                raise ExportError(f"prune: {exc}; nothing removed") from exc

        result = prune.execute(plan, None if stack is None else still_needed)
    return _emit(args, result.public(), prune.render(result))


def _rollback(args: argparse.Namespace, client: AdminClient) -> int:
    model_dir = args.repo / args.name
    try:
        result = rollback.rollback(
            client, args.name, args.config, scan(model_dir), args.label, args.to, args.wait
        )
    except StackUnavailable as exc:
        raise ExportError(f"rollback: {exc}; nothing changed") from exc
    return _emit(args, result.public(), rollback.render(result))


def run(args: argparse.Namespace) -> int:
    """One ``versions`` action; ``ExportError`` (exit 2) for bad input and refusals."""
    model_dir = _check(args)
    try:
        client = AdminClient(resolve_url(args.url), resolve_token(args.token))
    except StackUnavailable as exc:
        raise ExportError(str(exc)) from exc
    if args.action == "prune":
        return _prune(args, model_dir, client)
    if args.action == "rollback":
        return _rollback(args, client)
    labels, policy = _entry_facts(args.config, args.name)
    found = listing.gather(args.name, model_dir, labels, policy, client)
    return _emit(args, found.public(), listing.render(found))
