from __future__ import annotations

import gzip
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from logic_service.log_setup import (
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
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - INFO - second day$", current.strip())


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
    from logic_service.log_setup import configure_logging

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
