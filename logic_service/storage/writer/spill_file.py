"""The prediction log's overflow: rows the database could not take yet, in local files.

When the database is slower than traffic, or away, the writer
(``recorder.py``) appends rows here instead of dropping them and
replays them once inserts succeed again. Why files and not a bigger queue:
memory is what a replica runs out of first, and a restart must not lose what
was waiting; a folder on the replica's disk survives both.

Layout: ``<dir>/<time_ns>-<owner>-<seq>.jsonl``, one JSON object (one row) a
line, so names sort oldest first. A process appends to one open segment of
its own and holds an exclusive ``flock`` on it; a segment is closed when it
reaches ``segment_bytes`` or when the writer wants to replay it. Closed
segments, also those left by a process that died, are replayed by whichever
process locks them first, and deleted once every row is in the database.
Inserts skip rows already there (``(request_id, record_index)`` is unique),
so a replay cut short by a crash is simply replayed again.

The folder is capped at ``max_bytes`` (all processes together, as last
counted: within one segment per process). At the cap ``append`` refuses;
the writer counts those rows dropped (reason ``spill_full``) and logs an
error: the one case where a record can be lost, and it is never silent.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.engine import make_url

from logic_service.settings.storage import StorageSettings

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
RESCAN_S = 2.0  # how often other processes' segments are looked for


@dataclass
class _Claimed:
    """A closed segment this process locked for replay, and how far it got."""

    path: Path
    handle: IO[bytes]
    size: int


class SpillFile:
    """Append rows when the database cannot take them; hand them back, oldest first.

    Thread-safe: the request path appends (when the queue is full) while the
    writer thread appends and replays.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 8 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes or 1))
        self._owner = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._seq = 0
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None
        self._active_path: Path | None = None
        self._active_bytes = 0
        self._closed_bytes = 0  # every closed segment in the folder, as last counted
        self._scanned_at = 0.0
        self._claimed: _Claimed | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._rescan()

    # ---- appending (request path and writer) ------------------------------------------------

    def append(self, rows: list[dict[str, Any]]) -> bool:
        """Write ``rows`` to the open segment; False (nothing written) at the size cap."""
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        with self._lock:
            if self._over_cap(len(data)):
                self._rescan()  # others may have replayed since we last looked
                if self._over_cap(len(data)):
                    return False
            if self._active is None:
                self._open_segment()
            assert self._active is not None
            self._active.write(data)
            self._active_bytes += len(data)
            if self._active_bytes >= self.segment_bytes:
                self._close_segment()
        return True

    def pending_bytes(self, rescan: bool = True) -> int:
        """Bytes waiting for replay in the folder: this process's count, refreshed from
        the folder every ``RESCAN_S`` (other processes' files) unless ``rescan`` is False
        (the request path: no directory listing there)."""
        with self._lock:
            if rescan and time.monotonic() - self._scanned_at > RESCAN_S:
                self._rescan()
            return self._closed_bytes + self._active_bytes

    def close(self) -> None:
        """Close the open segment (kept for the next start to replay) and release a claim."""
        with self._lock:
            self._close_segment()
        self._release()

    # ---- replay (writer thread only) --------------------------------------------------------

    def replay_some(self, write: Callable[[list[dict[str, Any]]], None], max_rows: int) -> int:
        """Hand up to ``max_rows`` of the oldest spilled rows to ``write``; rows handed.

        ``write`` raising leaves the rows in place (raised again here); rows
        it took are never handed out twice by this process. A segment is
        deleted when its last row was taken. 0: nothing (claimable) waits.
        """
        claimed = self._claimed or self._claim()
        if claimed is None:
            return 0
        start = claimed.handle.tell()
        rows: list[dict[str, Any]] = []
        while len(rows) < max_rows:
            line = claimed.handle.readline()
            if not line:
                break
            if not line.endswith(b"\n"):  # the writer died mid-line: that row never finished
                log.error("spill %s: dropped an unfinished last line", claimed.path.name)
                break
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.error("spill %s: skipped a line that is not JSON", claimed.path.name)
        if rows:
            try:
                write(rows)
            except BaseException:
                claimed.handle.seek(start)
                raise
        if claimed.handle.tell() >= claimed.size or not rows:
            self._finish(claimed)
        return len(rows)

    def _claim(self) -> _Claimed | None:
        with self._lock:
            names = self._segment_names()
            if not names and self._active_bytes:
                self._close_segment()  # replay what this process spilled last
                names = self._segment_names()
        for name in names:
            path = self.directory / name
            try:
                handle = open(path, "rb")  # noqa: SIM115 - kept open while replaying
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # another process may have finished (deleted) it between listing and locking
                if os.fstat(handle.fileno()).st_ino != os.stat(path).st_ino:
                    raise FileNotFoundError(path)
            except (BlockingIOError, FileNotFoundError):
                handle.close()
                continue
            self._claimed = _Claimed(path, handle, os.fstat(handle.fileno()).st_size)
            return self._claimed
        return None

    def _finish(self, claimed: _Claimed) -> None:
        with contextlib.suppress(FileNotFoundError):
            claimed.path.unlink()
        claimed.handle.close()
        self._claimed = None
        with self._lock:
            self._rescan()

    def _release(self) -> None:
        if self._claimed is not None:
            self._claimed.handle.close()
            self._claimed = None

    # ---- files ------------------------------------------------------------------------------

    def _over_cap(self, extra: int) -> bool:
        return self._closed_bytes + self._active_bytes + extra > self.max_bytes

    def _segment_names(self) -> list[str]:
        """Closed segments, oldest first (this process's open one is not among them)."""
        active = self._active_path.name if self._active_path is not None else None
        try:
            names = [
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.endswith(SUFFIX) and entry.name != active
            ]
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            return []
        return sorted(names)

    def _rescan(self) -> None:
        total = 0
        for name in self._segment_names():
            with contextlib.suppress(FileNotFoundError):
                total += (self.directory / name).stat().st_size
        self._closed_bytes = total
        self._scanned_at = time.monotonic()

    def _open_segment(self) -> None:
        self._seq += 1
        path = self.directory / f"{time.time_ns():020d}-{self._owner}-{self._seq:06d}{SUFFIX}"
        handle = open(path, "ab")  # noqa: SIM115 - closed by _close_segment
        fcntl.flock(handle, fcntl.LOCK_EX)  # new file: nobody else holds it
        self._active, self._active_path, self._active_bytes = handle, path, 0

    def _close_segment(self) -> None:
        if self._active is None:
            return
        self._active.flush()
        self._active.close()  # releases the flock: any process may replay it now
        self._closed_bytes += self._active_bytes
        self._active, self._active_path, self._active_bytes = None, None, 0


def spill_dir(storage: StorageSettings) -> Path:
    """``storage.spill.dir``, or beside a SQLite file (var/spill/... for a server database)."""
    if storage.spill.dir is not None:
        return storage.spill.dir
    url = make_url(storage.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).parent / "spill" / "prediction-log"
    return Path("var/spill/prediction-log")


def open_spill(storage: StorageSettings) -> SpillFile | None:
    """The spill folder the settings name (created on demand), or None when turned off."""
    if not storage.spill.enabled:
        return None
    spill, directory = storage.spill, spill_dir(storage)
    try:
        return SpillFile(directory, spill.max_bytes, spill.segment_bytes)
    except OSError as exc:
        # serving matters more than the log: start, say so at every start, count drops
        log.error(
            "storage.spill.dir: cannot use %s (%s): rows the database cannot take will be "
            "DROPPED (counted); mount a writable folder there",
            directory,
            exc.strerror or exc,
        )
        return None
