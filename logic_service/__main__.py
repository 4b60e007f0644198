"""``python -m logic_service serve|rollout|api|db|dataset`` (console script ``tierkit-logic``).

``serve`` first brings the database schema to head (or checks it, see
``storage.migrate_on_start``) once, then starts uvicorn; ``db`` does only
that part (``cli/db.py``), ``rollout`` and ``api`` talk to the admin API
(``cli/rollout.py``, ``cli/api.py``).
Flags override ``logic.yaml`` and ``TIERKIT_*`` variables. With ``--workers``
above one, uvicorn starts that many processes; each builds its app from the
environment, so flags are handed to them as ``TIERKIT_*`` variables, and
metrics are summed across them through a prometheus multiprocess directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from logic_service.cli import api as api_cli
from logic_service.cli import dataset as dataset_cli
from logic_service.cli import db as db_cli
from logic_service.cli import rollout as rollout_cli
from logic_service.cli.pipe import quiet_on_broken_pipe
from logic_service.settings import CONFIG_ENV, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m logic_service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the logic tier under uvicorn")
    serve.add_argument("--config", type=Path, help=f"logic.yaml (default: ${CONFIG_ENV})")
    serve.add_argument("--workers", type=int, help="uvicorn worker processes")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--protocol", choices=("grpc", "rest"), help="to the graph tier")
    serve.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    rollout = commands.add_parser("rollout", help="show and change rollouts (admin API client)")
    rollout_cli.configure(rollout)
    api = commands.add_parser("api", help="request API versions: status, retire, restore")
    api_cli.configure(api)
    database = commands.add_parser("db", help="upgrade or inspect the database schema")
    db_cli.configure(database)
    dataset = commands.add_parser("dataset", help="export a training set from the prediction log")
    dataset_cli.configure(dataset)
    secrets = commands.add_parser(
        "init-secrets", help="the compose stack's generated secrets (cli/init_secrets.py)"
    )
    secrets.add_argument("folder", help="where db_password and admin_token are kept")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Client commands: `... | head` ends them quietly (cli_pipe); never the server.
    if args.command == "rollout":
        return quiet_on_broken_pipe(lambda: rollout_cli.run(args))
    if args.command == "api":
        return quiet_on_broken_pipe(lambda: api_cli.run(args))
    if args.command == "db":
        return quiet_on_broken_pipe(lambda: db_cli.run(args))
    if args.command == "dataset":
        return quiet_on_broken_pipe(lambda: dataset_cli.run(args))
    if args.command == "init-secrets":
        from logic_service.cli.init_secrets import main as init_secrets

        return init_secrets([args.folder])
    flags = {"workers": args.workers, "host": args.host, "port": args.port}
    env = {
        "TIERKIT_WORKERS": args.workers,
        "TIERKIT_HOST": args.host,
        "TIERKIT_PORT": args.port,
        "TIERKIT_GRAPH__PROTOCOL": args.protocol,
        "TIERKIT_LOG__LEVEL": args.log_level,
    }
    if args.config is not None:
        os.environ[CONFIG_ENV] = str(args.config.resolve())
    # Workers re-read settings from the environment: flags travel there.
    os.environ.update({k: str(v) for k, v in env.items() if v is not None})
    try:
        settings = load_settings(args.config, **flags)
    except (SettingsError, ValueError) as exc:
        print(f"logic_service: bad configuration: {exc}", file=sys.stderr)
        return 2
    prepared = db_cli.prepare_for_serve(settings)
    if prepared != 0:
        return prepared
    from logic_service.server import serve

    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
