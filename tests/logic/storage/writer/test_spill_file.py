"""The spill folder on a real disk: order, the size cap, segments left by another process."""

from __future__ import annotations

import fcntl
from pathlib import Path

import orjson
import pytest

from logic_service.settings import LogicSettings
from logic_service.storage.writer.spill_file import SpillFile, open_spill, spill_dir


def _rows(start: int, count: int) -> list[dict]:
    return [{"request_id": f"r-{i}", "n": i} for i in range(start, start + count)]


def _take_all(spill: SpillFile, batch: int = 7) -> list[dict]:
    taken: list[dict] = []
    while spill.replay_some(taken.extend, batch):
        pass
    return taken


def test_rows_come_back_oldest_first_across_segments_and_files_go(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill", max_bytes=1 << 20, segment_bytes=200)
    for start in range(0, 50, 10):
        assert spill.append(_rows(start, 10))
    assert len(list((tmp_path / "spill").glob("*.jsonl"))) > 2  # it rolled segments
    assert spill.pending_bytes() > 0
    assert [row["n"] for row in _take_all(spill)] == list(range(50))
    assert spill.pending_bytes() == 0
    assert list((tmp_path / "spill").iterdir()) == []


def test_a_failing_write_leaves_the_rows_for_the_next_replay(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path, max_bytes=1 << 20)
    spill.append(_rows(0, 5))

    def refuse(rows: list[dict]) -> None:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        spill.replay_some(refuse, 3)
    assert [row["n"] for row in _take_all(spill, 3)] == [0, 1, 2, 3, 4]


def test_the_cap_refuses_whole_appends_and_frees_up_after_replay(tmp_path: Path) -> None:
    one = len(orjson.dumps(_rows(0, 1)[0])) + 1
    spill = SpillFile(tmp_path, max_bytes=one * 3)
    assert spill.append(_rows(0, 2))
    assert not spill.append(_rows(2, 2))  # would pass the cap: nothing of it written
    assert spill.append(_rows(4, 1))
    assert not spill.append(_rows(5, 1))
    assert [row["n"] for row in _take_all(spill)] == [0, 1, 4]
    assert spill.append(_rows(6, 3))


def test_segments_of_a_dead_process_are_replayed_and_a_live_ones_are_not(tmp_path: Path) -> None:
    dead = SpillFile(tmp_path, max_bytes=1 << 20)
    dead.append(_rows(0, 3))
    dead.close()  # the process ended: its segment stays for whoever starts next
    live = SpillFile(tmp_path, max_bytes=1 << 20)
    live.append(_rows(100, 2))  # its open segment is locked by "another process"
    newcomer = SpillFile(tmp_path, max_bytes=1 << 20)
    assert newcomer.pending_bytes() > 0
    taken = _take_all(newcomer)
    assert [row["n"] for row in taken] == [0, 1, 2]  # the live segment was skipped
    assert [row["n"] for row in _take_all(live)] == [100, 101]


def test_an_unfinished_last_line_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    path = tmp_path / f"{1:020d}-crashed-000001.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}\n{"n":')
    spill = SpillFile(tmp_path, max_bytes=1 << 20)
    assert [row["n"] for row in _take_all(spill)] == [1, 2]
    assert not path.exists()


def test_a_locked_segment_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / f"{1:020d}-other-000001.jsonl"
    path.write_bytes(b'{"n":1}\n')
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        spill = SpillFile(tmp_path, max_bytes=1 << 20)
        assert spill.replay_some(lambda rows: None, 10) == 0
    assert [row["n"] for row in _take_all(spill)] == [1]


def test_the_default_folder_sits_beside_a_sqlite_file(tmp_path: Path) -> None:
    sqlite = LogicSettings(storage={"database_url": f"sqlite:///{tmp_path}/db/x.db"})
    assert spill_dir(sqlite.storage) == tmp_path / "db" / "spill" / "prediction-log"
    server = LogicSettings(storage={"database_url": "postgresql://u@h/db"})
    assert spill_dir(server.storage) == Path("var/spill/prediction-log")
    named = LogicSettings(storage={"spill": {"dir": str(tmp_path / "s")}})
    assert spill_dir(named.storage) == tmp_path / "s"


def test_a_folder_that_cannot_be_made_is_an_error_in_the_log_not_a_failed_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = LogicSettings(storage={"spill": {"dir": str(blocker / "spill")}})
    assert open_spill(settings.storage) is None
    assert any(
        "storage.spill.dir" in r.getMessage() for r in caplog.records if r.levelname == "ERROR"
    )
    off = LogicSettings(storage={"spill": {"enabled": False, "dir": str(tmp_path / "s")}})
    assert open_spill(off.storage) is None and not (tmp_path / "s").exists()
