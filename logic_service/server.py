"""Running the app under uvicorn, with one or several worker processes.

The exit code is the contract with whatever runs us (a container runtime,
Supervisor under ./scripts/up, systemd): 0 only for a stop that was asked for
(SIGTERM, SIGINT), non-zero when the tier cannot serve. With one process uvicorn
already exits 3 when the app fails to start. With several, ``uvicorn.run``
returns normally when a worker fails to start, and a worker whose app factory
raises is restarted forever; so here every worker start failure becomes
uvicorn's ``STARTUP_FAILURE`` exit, which stops uvicorn's supervisor (it does
not restart such a worker), and the parent turns that into its own exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from logic_service.observability.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from logic_service.settings import LogicSettings

WORKER_APP = "logic_service.server:worker_app"


def serve(settings: LogicSettings) -> int:
    options = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,  # our handlers (observability/logs.py) own the format and the file
        "access_log": False,  # one line per request comes from RequestMiddleware
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        os.environ.pop(MULTIPROC_ENV, None)
        from logic_service.app import create_app

        uvicorn.run(create_app(settings), **options)  # exits 3 itself when startup fails
        return 0
    metrics_dir = settings.metrics_dir or settings.log.dir / f"prometheus-{settings.port}"
    prepare_multiprocess_dir(metrics_dir)
    os.environ[MULTIPROC_ENV] = str(metrics_dir.resolve())
    return run_workers(
        uvicorn.Config(WORKER_APP, factory=True, workers=settings.workers, **options),
        settings.log.dir / settings.log.file,
    )


def run_workers(config: uvicorn.Config, log_file: os.PathLike[str] | str) -> int:
    """``uvicorn.run`` for ``workers > 1``, keeping the workers' fate for the exit code."""
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a normal stop
        supervisor.run()
    failed = [p for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
    if not failed:
        return 0
    print(
        f"logic_service: worker process [{failed[0].pid}] failed to start (exit code "
        f"{STARTUP_FAILURE}), so the logic tier stopped; its error is above or in {log_file}",
        file=sys.stderr,
        flush=True,
    )
    return STARTUP_FAILURE


def worker_app() -> FastAPI:
    """App factory of each uvicorn worker: any failure to build it is a startup failure.

    uvicorn only treats a factory's ``TypeError`` as one; any other exception
    kills the worker with code 1 and uvicorn starts another, forever.
    """
    from logic_service.app import app_from_environment

    try:
        return app_from_environment()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(
            f"logic_service: worker process [{os.getpid()}] failed to start: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(STARTUP_FAILURE)
