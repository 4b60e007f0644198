"""What the runner tells the user: ``[up] ...`` lines on the terminal, the same in logs/up.log.

The terminal shows them while someone watches; ``up.log`` keeps them for
whoever asks later why a tier restarted at 3 a.m. It follows the project's
log convention: ``%(asctime)s - %(levelname)s - %(message)s``, rotated at UTC
midnight with a ``%Y-%m-%d`` suffix, a few days kept.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

RETENTION_DAYS = 7


class UpLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._logger = logging.getLogger(f"tierkit.up.{path}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        handler = logging.handlers.TimedRotatingFileHandler(
            path, when="midnight", utc=True, backupCount=RETENTION_DAYS, encoding="utf-8"
        )
        # ISO 8601 with the zone (the host's UTC offset), as the tiers' lines
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s - %(levelname)s - %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z"
            )
        )
        self._logger.addHandler(handler)
        self._line_open = False  # the dots of the readiness wait are on the line

    def say(self, message: str, *, error: bool = False, stamp: bool = False) -> None:
        """One message: ``[up] message`` on stdout (stderr for errors), and in up.log.

        ``stamp`` puts the time on the terminal too, for events while the stack runs.
        """
        if self._line_open:
            print(flush=True)
            self._line_open = False
        shown = f"{time.strftime('%H:%M:%S')} {message}" if stamp else message
        print(f"[up] {shown}", file=sys.stderr if error else sys.stdout, flush=True)
        self._logger.log(logging.ERROR if error else logging.INFO, message)

    def begin_line(self, text: str) -> None:
        """``[up] text`` without a line end: dots or the end of the line follow."""
        print(f"[up] {text}", end="", flush=True)
        self._line_open = True
        self._logger.info(text)

    def dot(self) -> None:
        if not self._line_open:
            print("[up] still waiting ", end="", flush=True)
            self._line_open = True
        print(".", end="", flush=True)

    def end_line(self, text: str) -> None:
        print(text if self._line_open else f"[up] {text.strip()}", flush=True)
        self._line_open = False
        self._logger.info(text.strip())

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
