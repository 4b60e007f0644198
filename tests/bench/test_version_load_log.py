"""How ``bench graph``'s version-load part learns that a version loaded: from the log.

The benchmark must not ask the server (GetModelStatus) while it measures, so it
reads the server's log as the server writes it. These tests write that log the
way a running server does, line by line from another thread, into a real file.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.version_load import _log_windows, _wait_logged  # noqa: E402

LOADING = "2026-12-02 15:00:00,100 - INFO - Loading servable: {name: ctr version: 2}\n"
LOADED = (
    "2026-12-02 15:00:00,250 - INFO - Successfully loaded servable version "
    "{name: ctr version: 2} in 0.15 s\n"
)


def _write_later(log: Path, parts: list[str], pause: float = 0.05) -> threading.Thread:
    def write() -> None:
        with open(log, "a") as stream:
            for part in parts:
                time.sleep(pause)
                stream.write(part)
                stream.flush()

    writer = threading.Thread(target=write)
    writer.start()
    return writer


def test_returns_once_the_loaded_line_is_complete(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("2026-12-02 15:00:00,000 - INFO - Running gRPC ModelServer ...\n")
    # The line arrives in two writes: the first half alone must not count.
    half = len(LOADED) // 2
    writer = _write_later(log, [LOADING, LOADED[:half], LOADED[half:]])
    before = time.time()
    seen = _wait_logged(log, "ctr", 2, timeout=30.0)
    writer.join()
    assert seen is not None and seen >= before
    assert log.read_text().endswith(LOADED)
    # The same lines give the load window the report uses: 0.15 s, start to end.
    [(begin, end)] = _log_windows(log, "ctr")
    assert round(end - begin, 3) == 0.15


def test_other_versions_and_models_do_not_count(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        LOADED.replace("version: 2", "version: 3") + LOADED.replace("name: ctr", "name: other")
    )
    assert _wait_logged(log, "ctr", 2, timeout=0.2) is None


def test_a_retry_is_waited_through_and_a_final_failure_ends_the_wait(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    retry = (
        "2026-12-02 15:00:00,250 - WARNING - Loading servable: {name: ctr version: 2} failed: "
        "Failed to load SavedModel; retrying in 0.1 s (1 retries left)\n"
    )
    writer = _write_later(log, [LOADING, retry, LOADED])
    assert _wait_logged(log, "ctr", 2, timeout=30.0) is not None
    writer.join()

    failed = retry.replace("WARNING", "ERROR").split("; retrying")[0] + "\n"
    # A success line after the final failure would be returned by a wait that
    # ignored failures; this one must stop at the failure.
    log.write_text("")
    writer = _write_later(log, [LOADING, failed, LOADED], pause=0.3)
    assert _wait_logged(log, "ctr", 2, timeout=30.0) is None
    writer.join()
