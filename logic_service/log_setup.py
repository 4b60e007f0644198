"""Logging of the logic tier: one file per service, rotated at UTC midnight.

Why a handler of our own instead of ``TimedRotatingFileHandler``:

* with several uvicorn workers, each process holds the file open; the stdlib
  handler would let every worker rename the (new) file again at midnight and
  clobber the first one's rotation. Here a rotation happens under an
  ``flock`` and only when the file on disk is still the one this process
  wrote to; the others just reopen.
* retention keeps N dated files (``logic.log.2026-11-21``) and gzips older
  ones into ``archive/`` instead of deleting them;
* the clock is injectable (``now``), so a test drives midnight without waiting.

Every line of a request carries its id: ``request_id_var`` is set by the
request middleware and a filter prefixes the message with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime
from pathlib import Path

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
DATE_SUFFIX = "%Y-%m-%d"
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")

request_id_var: ContextVar[str | None] = ContextVar("tierkit_request_id", default=None)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RequestIdFilter(logging.Filter):
    """Put the current request's id in front of every message logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id and not getattr(record, "tierkit_request_id", None):
            record.tierkit_request_id = request_id
            record.msg = f"[{request_id}] {record.getMessage()}"
            record.args = None
        return True


class DailyUtcFileHandler(logging.FileHandler):
    """Append to ``path``; at the first record of a new UTC day, rename it to ``path.<day>``."""

    def __init__(
        self,
        path: Path | str,
        retention_days: int = 3,
        archive_dir: Path | str | None = None,
        now: Clock = utc_now,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self.archive_dir = Path(archive_dir) if archive_dir else self.path.parent / "archive"
        self.now = now
        super().__init__(self.path, mode="a", encoding="utf-8", delay=False)
        self._day = self._file_day()

    def _file_day(self) -> date:
        """The day the open file belongs to: its last write, so a restart the next day rotates."""
        today = self.now().date()
        try:
            stat = os.stat(self.path)
        except OSError:
            return today
        if stat.st_size == 0:
            return today
        return min(datetime.fromtimestamp(stat.st_mtime, UTC).date(), today)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            today = self.now().date()
            if today != self._day:
                self.rotate(today)
        except Exception:
            self.handleError(record)
        super().emit(record)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def rotate(self, today: date) -> None:
        """Close the day ``self._day``; name the file after it unless another worker already did."""
        with self._locked():
            if self.stream is not None:
                self.stream.flush()
            dated = self.path.with_name(f"{self.path.name}.{self._day.strftime(DATE_SUFFIX)}")
            mine = self.stream is not None and _same_file(self.stream.fileno(), self.path)
            if mine and not dated.exists() and self.path.exists():
                os.replace(self.path, dated)
            if self.stream is not None:
                self.stream.close()
                self.stream = None  # type: ignore[assignment]
            self.stream = self._open()
            self._day = today
            self.prune()

    def prune(self) -> None:
        """Keep ``retention_days`` dated files; gzip older ones into the archive directory."""
        prefix = f"{self.path.name}."
        dated = sorted(
            p
            for p in self.path.parent.iterdir()
            if p.name.startswith(prefix) and _DATED.match(p.name[len(prefix) :])
        )
        surplus = dated[: max(0, len(dated) - self.retention_days)]
        if not surplus:
            return
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        for old in surplus:
            target = self.archive_dir / f"{old.name}.gz"
            partial = target.with_name(f".{target.name}.partial")
            with open(old, "rb") as source, gzip.open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)
            old.unlink()


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, on_disk = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


class UtcFormatter(logging.Formatter):
    """Timestamps in UTC, like the file names, so a line and its file agree on the day."""

    converter = time.gmtime


def configure_logging(
    log_dir: Path | str,
    file_name: str = "logic.log",
    level: str = "INFO",
    retention_days: int = 3,
    archive_dir: str = "archive",
    now: Clock = utc_now,
    console: bool = True,
) -> DailyUtcFileHandler:
    """Route the root logger (and uvicorn's) to the rotated file and, optionally, stderr.

    Idempotent per process: handlers installed by an earlier call are replaced,
    so a test can configure twice without doubling every line.
    """
    log_dir = Path(log_dir)
    formatter = UtcFormatter(LOG_FORMAT)
    request_filter = RequestIdFilter()
    file_handler = DailyUtcFileHandler(
        log_dir / file_name, retention_days, log_dir / archive_dir, now=now
    )
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_tierkit", False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(request_filter)
        handler._tierkit = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # one line per request is ours
    # httpx logs every graph-tier call at INFO: a second line per request.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return file_handler
