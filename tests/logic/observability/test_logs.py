from __future__ import annotations

import gzip
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from logic_service.observability.logs import (
    LOG_FORMAT,
    DailyUtcFileHandler,
    RequestIdFilter,
    UtcFormatter,
    request_id_var,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2030, 1, 10, 22, 0, tzinfo=UTC))


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    handler.setFormatter(UtcFormatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(f"tierkit-test-{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_rotates_at_utc_midnight_with_a_date_suffix(tmp_path: Path, clock: Clock) -> None:
    handler = DailyUtcFileHandler(tmp_path / "logic.log", retention_days=3, now=clock)
    logger = _logger(handler, "rotate")
    logger.info("first day")
    clock.advance(hours=1, minutes=59)  # 23:59 still the 10th
    logger.info("still first day")
    clock.advance(minutes=2)  # 00:01 on the 11th
    logger.info("second day")
    handler.close()

    dated = tmp_path / "logic.log.2030-01-10"
    assert dated.read_text().count("\n") == 2
    assert "first day" in dated.read_text() and "still first day" in dated.read_text()
    current = (tmp_path / "logic.log").read_text()
    assert "second day" in current and "first day" not in current
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z - INFO - second day$", current.strip()
    )


def test_retention_keeps_n_days_and_gzips_older_ones(tmp_path: Path, clock: Clock) -> None:
    handler = DailyUtcFileHandler(tmp_path / "logic.log", retention_days=3, now=clock)
    logger = _logger(handler, "retention")
    for day in range(6):  # the 10th .. the 15th
        logger.info("line of day %d", day)
        clock.advance(days=1)
    logger.info("today")
    handler.close()

    kept = sorted(p.name for p in tmp_path.glob("logic.log.*"))
    assert kept == ["logic.log.2030-01-13", "logic.log.2030-01-14", "logic.log.2030-01-15"]
    archived = sorted(p.name for p in (tmp_path / "archive").iterdir())
    assert archived == [
        "logic.log.2030-01-10.gz",
        "logic.log.2030-01-11.gz",
        "logic.log.2030-01-12.gz",
    ]
    with gzip.open(tmp_path / "archive" / "logic.log.2030-01-11.gz", "rt") as f:
        assert "line of day 1" in f.read()
    assert "today" in (tmp_path / "logic.log").read_text()


def test_two_workers_rotate_once_and_lose_no_line(tmp_path: Path, clock: Clock) -> None:
    first = DailyUtcFileHandler(tmp_path / "logic.log", retention_days=3, now=clock)
    second = DailyUtcFileHandler(tmp_path / "logic.log", retention_days=3, now=clock)
    a, b = _logger(first, "worker-a"), _logger(second, "worker-b")
    a.info("a before")
    b.info("b before")
    clock.advance(hours=3)
    a.info("a after")  # a rotates
    b.info("b after")  # b must reopen, not rename a's new file over the dated one
    first.close()
    second.close()
    dated = (tmp_path / "logic.log.2030-01-10").read_text()
    current = (tmp_path / "logic.log").read_text()
    assert "a before" in dated and "b before" in dated
    assert "a after" in current and "b after" in current
    assert "before" not in current


def test_every_line_of_a_request_carries_its_id(tmp_path: Path, clock: Clock) -> None:
    handler = DailyUtcFileHandler(tmp_path / "logic.log", now=clock)
    logger = _logger(handler, "request-id")
    token = request_id_var.set("req-123")
    try:
        logger.info("inside %s", "the request")
    finally:
        request_id_var.reset(token)
    logger.info("outside")
    handler.close()
    lines = (tmp_path / "logic.log").read_text().splitlines()
    assert lines[0].endswith(" - INFO - [req-123] inside the request")
    assert lines[1].endswith(" - INFO - outside")


def test_debug_is_off_by_default(tmp_path: Path) -> None:
    from logic_service.observability.logs import configure_logging

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        configure_logging(tmp_path, console=False)
        logging.getLogger("tierkit.some.module").debug("hidden")
        logging.getLogger("tierkit.some.module").info("shown")
        text = (tmp_path / "logic.log").read_text()
        assert "shown" in text and "hidden" not in text
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_tierkit", False)]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(before[0])


def _all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("logic.log*") if p.is_file()]


def test_a_day_past_max_file_bytes_is_cut_into_parts_and_no_line_is_lost(
    tmp_path: Path, clock: Clock
) -> None:
    handler = DailyUtcFileHandler(
        tmp_path / "logic.log", retention_days=3, now=clock, max_file_bytes=4000
    )
    logger = _logger(handler, "size")
    for i in range(1000):
        logger.info("line %04d of a busy day", i)
    handler.close()
    parts = sorted(p.name for p in tmp_path.glob("logic.log.*"))
    assert parts[:3] == ["logic.log.2030-01-10", "logic.log.2030-01-10.1", "logic.log.2030-01-10.2"]
    # checked every 64 records: a part ends within 64 lines past the limit
    assert all((tmp_path / p).stat().st_size < 4000 + 64 * 70 for p in parts)
    ordered = [
        tmp_path / p
        for p in sorted(parts, key=lambda n: int(n.split(".")[-1]) if n.count(".") == 3 else 0)
    ]
    text = "".join(p.read_text() for p in [*ordered, tmp_path / "logic.log"])
    assert re.findall(r"line (\d{4})", text) == [f"{i:04d}" for i in range(1000)]


def test_archives_past_their_retention_are_deleted(tmp_path: Path, clock: Clock) -> None:
    handler = DailyUtcFileHandler(
        tmp_path / "logic.log", retention_days=1, now=clock, archive_retention_days=3
    )
    logger = _logger(handler, "archive-retention")
    for day in range(10):  # the 10th .. the 19th
        logger.info("line of day %d", day)
        clock.advance(days=1)
    logger.info("today, the 20th")
    handler.close()
    archived = sorted(p.name for p in (tmp_path / "archive").iterdir())
    # the 19th stays plain (retention_days=1); archives from the 17th (20th - 3 days) on
    assert archived == ["logic.log.2030-01-17.gz", "logic.log.2030-01-18.gz"]
    assert sorted(p.name for p in tmp_path.glob("logic.log.*")) == ["logic.log.2030-01-19"]


def test_everything_together_stays_under_the_total_cap_oldest_going_first(
    tmp_path: Path, clock: Clock
) -> None:
    handler = DailyUtcFileHandler(
        tmp_path / "logic.log",
        retention_days=2,
        now=clock,
        max_file_bytes=3000,
        max_total_bytes=12_000,
    )
    logger = _logger(handler, "total-cap")
    for day in range(5):
        for i in range(300):
            logger.info("day %d line %04d %s", day, i, "x" * 20)
        clock.advance(days=1)
    logger.info("the last line")
    handler.prune()
    handler.close()
    files = _all_files(tmp_path)
    assert sum(p.stat().st_size for p in files) <= 12_000
    assert "the last line" in (tmp_path / "logic.log").read_text()
    # what is left is the newest: no line of day 0 anywhere
    plain = [p for p in files if p.suffix != ".gz"]
    assert not any("day 0 line" in p.read_text() for p in plain)
    for archive in (p for p in files if p.suffix == ".gz"):
        with gzip.open(archive, "rt") as f:
            assert "day 0 line" not in f.read()


def test_lines_carry_an_iso_8601_time_with_its_zone(tmp_path: Path, clock: Clock) -> None:
    handler = DailyUtcFileHandler(tmp_path / "logic.log", now=clock)
    _logger(handler, "iso").warning("hello")
    handler.close()
    line = (tmp_path / "logic.log").read_text().strip()
    stamp = line.split(" - ")[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60
