"""Running the app under uvicorn, with one or several worker processes."""

from __future__ import annotations

import os

import uvicorn

from logic_service.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from logic_service.settings import LogicSettings


def serve(settings: LogicSettings) -> int:
    options = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,  # our handlers (log_setup) own the format and the file
        "access_log": False,  # one line per request comes from RequestMiddleware
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        os.environ.pop(MULTIPROC_ENV, None)
        from logic_service.app import create_app

        uvicorn.run(create_app(settings), **options)
        return 0
    metrics_dir = settings.metrics_dir or settings.log.dir / f"prometheus-{settings.port}"
    prepare_multiprocess_dir(metrics_dir)
    os.environ[MULTIPROC_ENV] = str(metrics_dir.resolve())
    uvicorn.run(
        "logic_service.app:app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,
    )
    return 0
