"""``python -m logic_service db upgrade|current|check``: the schema, for operators and Jobs.

Reads the same settings as ``serve`` (``--config logic.yaml``, ``TIERKIT_*``),
so a Kubernetes Job or a compose one-off runs the migrations once per
rollout with the replicas' own configuration (then the replicas may start
with ``storage.migrate_on_start: false``). ``prepare_for_serve`` is the same
step ``serve`` takes before uvicorn starts, so a bad URL, a missing password
file or a schema left behind is one clear line and an exit code, not a
traceback from every worker.

Exit codes: 0 done (``check``: at head), 2 bad configuration (the message
names the setting), 1 the database refused or the migration failed
(``check``: not at head).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from logic_service.observability.logs import LOG_FORMAT, UtcFormatter
from logic_service.settings import CONFIG_ENV, LogicSettings, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
PROG = "logic_service db"
SERVE_PROG = "logic_service serve: failed to start"  # its refusals end the command


def configure(parser: argparse.ArgumentParser) -> None:
    config_help = f"logic.yaml (default: ${CONFIG_ENV})"
    parser.add_argument("--config", type=Path, help=config_help)
    actions = parser.add_subparsers(dest="action", required=True)
    for action, text in (
        ("upgrade", "upgrade the schema to this release's head (under a lock)"),
        ("current", "print the schema's revision and this release's head"),
        ("check", "exit 0 when the schema is at head, 1 when not"),
    ):
        # `db upgrade --config x` as well as `db --config x upgrade`
        command = actions.add_parser(action, help=text)
        command.add_argument("--config", type=Path, help=config_help, default=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    console = logging.StreamHandler(sys.stderr)  # Alembic's "Running upgrade", in our format
    console.setFormatter(UtcFormatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    try:
        settings = load_settings(args.config)
    except (SettingsError, ValueError) as exc:
        return _fail(PROG, EXIT_CONFIG, f"bad configuration: {exc}")
    return _run(args.action, settings, PROG)


def prepare_for_serve(settings: LogicSettings) -> int:
    """``serve``'s step before uvicorn: migrate (or check) once; an exit code, 0 to go on."""
    action = "upgrade" if settings.storage.migrate_on_start else "check"
    return _run(action, settings, SERVE_PROG, quiet=True)


def _run(action: str, settings: LogicSettings, prog: str, quiet: bool = False) -> int:
    # Imported here: `python -m logic_service rollout` needs neither SQLAlchemy nor Alembic.
    from sqlalchemy.exc import SQLAlchemyError

    from logic_service.storage.database import create_engine
    from logic_service.storage.database_url import DatabaseConfigError, masked
    from logic_service.storage.migrations import runner

    storage = settings.storage
    try:
        engine = create_engine(
            storage.database_url,
            storage.busy_timeout_ms,
            password_file=storage.database_password_file,
        )
    except DatabaseConfigError as exc:
        return _fail(prog, EXIT_CONFIG, f"bad configuration: {exc}")
    where = masked(engine.url)
    try:
        if action == "upgrade":
            result = runner.upgrade(engine)
            if result.before.revision == result.after.revision:
                if not quiet:
                    print(f"{where}: already {result.after.describe()}; nothing to do")
            else:
                verified = " (its tables verified, then stamped)" if result.adopted else ""
                done = (
                    f"{where}: upgraded from {result.before.label}{verified} "
                    f"to {result.after.label} (head)"
                )
                if quiet:  # serve: its own logging starts only in the workers
                    print(f"logic_service serve: {done}", file=sys.stderr)
                else:
                    print(done)
        elif action == "current":
            print(f"{where}: {runner.current(engine).describe()}")
        else:
            state = runner.require_head(engine)
            if not quiet:
                print(f"{where}: {state.describe()}")
    except (runner.SchemaNotAtHead, runner.MigrationError) as exc:
        return _fail(prog, EXIT_FAILED, f"{where}: {exc}")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _fail(prog, EXIT_FAILED, f"{where}: database error: {reason}")
    except OSError as exc:  # the SQLite lock file next to the database, say
        return _fail(prog, EXIT_FAILED, f"{where}: {exc}")
    finally:
        engine.dispose()
    return EXIT_OK


def _fail(prog: str, code: int, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code
