"""Logging of the logic tier: one file per service, rotated at UTC midnight and by size.

Why a handler of our own instead of ``TimedRotatingFileHandler``:

* with several uvicorn workers, each process holds the file open; the stdlib
  handler would let every worker rename the (new) file again at midnight and
  clobber the first one's rotation. Here a rotation happens under an
  ``flock`` and only when the file on disk is still the one this process
  wrote to; the others just reopen.
* retention keeps the dated files of the last N days (``logic.log.2026-11-21``,
  and ``logic.log.2026-11-21.1``... when a day passed ``max_file_bytes``) and
  gzips older ones into ``archive/``; archives older than
  ``archive_retention_days`` are deleted, and the oldest files go first
  whenever everything together passes ``max_total_bytes`` (issue 28: a disk
  never fills with logs);
* the clock is injectable (``now``), so a test drives midnight without waiting.

Lines start with an ISO 8601 time in UTC with its zone
(``2026-12-05T21:59:47.123Z``), so a line read alone says when it happened.

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
DATE_SUFFIX = "%Y-%m-%d"
# the suffix of a rotated file: its day, and a part number once a day passed max_file_bytes
_DATED = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?$")
SIZE_CHECK_EVERY = 64  # records between two looks at the file's size

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
    """Append to ``path``; at the first record of a new UTC day, or once the file holds
    ``max_file_bytes``, rename it to ``path.<day>`` (``path.<day>.<n>`` for later parts)."""

    def __init__(
        self,
        path: Path | str,
        retention_days: int = 3,
        archive_dir: Path | str | None = None,
        now: Clock = utc_now,
        *,
        max_file_bytes: int = 0,
        archive_retention_days: int = 0,
        max_total_bytes: int = 0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self.archive_dir = Path(archive_dir) if archive_dir else self.path.parent / "archive"
        self.now = now
        self.max_file_bytes = max_file_bytes  # 0: only daily
        self.archive_retention_days = archive_retention_days  # 0: archives kept
        self.max_total_bytes = max_total_bytes  # 0: no cap
        self._records = 0
        super().__init__(self.path, mode="a", encoding="utf-8", delay=False)
        self._day = self._file_day()
        with self._locked():
            self.prune()  # a restart after weeks away applies retention at once

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
            if today != self._day or self._too_big():
                self.rotate(today)
        except Exception:
            self.handleError(record)
        super().emit(record)

    def _too_big(self) -> bool:
        if not self.max_file_bytes or self.stream is None:
            return False
        self._records += 1
        if self._records % SIZE_CHECK_EVERY:
            return False
        try:
            return os.fstat(self.stream.fileno()).st_size >= self.max_file_bytes
        except OSError:
            return False

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
        """Close the file of ``self._day``; name it after the day unless another worker
        already did (then just reopen)."""
        with self._locked():
            if self.stream is not None:
                self.stream.flush()
            mine = self.stream is not None and _same_file(self.stream.fileno(), self.path)
            if mine and self.path.exists():
                os.replace(self.path, self._free_name(self._day))
            if self.stream is not None:
                self.stream.close()
                self.stream = None  # type: ignore[assignment]
            self.stream = self._open()
            self._day = today
            self.prune()

    def _free_name(self, day: date) -> Path:
        base = f"{self.path.name}.{day.strftime(DATE_SUFFIX)}"
        candidate, part = self.path.with_name(base), 0
        while candidate.exists() or (self.archive_dir / f"{candidate.name}.gz").exists():
            part += 1
            candidate = self.path.with_name(f"{base}.{part}")
        return candidate

    def _rotated(self, folder: Path, suffix: str = "") -> list[tuple[tuple[str, int], Path]]:
        """Rotated files of this log in ``folder``, oldest first, by (day, part)."""
        prefix = f"{self.path.name}."
        found = []
        try:
            entries = list(folder.iterdir())
        except FileNotFoundError:
            return []
        for p in entries:
            if not (p.name.startswith(prefix) and p.name.endswith(suffix)):
                continue
            match = _DATED.match(p.name[len(prefix) : len(p.name) - len(suffix)])
            if match:
                found.append(((match.group(1), int(match.group(2) or 0)), p))
        return sorted(found)

    def prune(self) -> None:
        """Gzip days past ``retention_days`` into the archive; delete archives past
        ``archive_retention_days``; then the oldest files while all pass ``max_total_bytes``."""
        dated = self._rotated(self.path.parent)
        days = sorted({key[0] for key, _ in dated})
        kept_days = set(days[-self.retention_days :]) if self.retention_days else set()
        surplus = [p for key, p in dated if key[0] not in kept_days]
        if surplus:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
        for old in surplus:
            target = self.archive_dir / f"{old.name}.gz"
            partial = target.with_name(f".{target.name}.partial")
            with open(old, "rb") as source, gzip.open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)
            old.unlink()
        archived = self._rotated(self.archive_dir, ".gz")
        if self.archive_retention_days:
            oldest = self.now().date() - timedelta(days=self.archive_retention_days)
            for key, path in archived:
                if key[0] < oldest.strftime(DATE_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            archived = self._rotated(self.archive_dir, ".gz")
        if self.max_total_bytes:
            self._cap([p for _, p in archived] + [p for _, p in self._rotated(self.path.parent)])

    def _cap(self, oldest_first: list[Path]) -> None:
        """Delete archives, then plain rotated files, oldest first, until all fit the cap."""
        sizes = {}
        for path in oldest_first:
            with contextlib.suppress(FileNotFoundError):
                sizes[path] = path.stat().st_size
        try:
            live = os.stat(self.path).st_size
        except OSError:
            live = 0
        total = live + sum(sizes.values())
        for path, size in sizes.items():
            if total <= self.max_total_bytes:
                return
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, on_disk = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


class UtcFormatter(logging.Formatter):
    """ISO 8601 timestamps in UTC with the zone (``2026-12-05T21:59:47.123Z``), like the
    file names' days, so a line and its file agree on the day and a line read alone (or
    next to another host's) says exactly when."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def configure_logging(
    log_dir: Path | str,
    file_name: str = "logic.log",
    level: str = "INFO",
    retention_days: int = 3,
    archive_dir: str = "archive",
    now: Clock = utc_now,
    console: bool = True,
    *,
    max_file_bytes: int = 0,
    archive_retention_days: int = 0,
    max_total_bytes: int = 0,
) -> DailyUtcFileHandler:
    """Route the root logger (and uvicorn's) to the rotated file and, optionally, stderr.

    Idempotent per process: handlers installed by an earlier call are replaced,
    so a test can configure twice without doubling every line.
    """
    log_dir = Path(log_dir)
    formatter = UtcFormatter(LOG_FORMAT)
    request_filter = RequestIdFilter()
    file_handler = DailyUtcFileHandler(
        log_dir / file_name,
        retention_days,
        log_dir / archive_dir,
        now=now,
        max_file_bytes=max_file_bytes,
        archive_retention_days=archive_retention_days,
        max_total_bytes=max_total_bytes,
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
