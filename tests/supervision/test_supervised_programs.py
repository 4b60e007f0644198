"""A real supervisord running tiny programs: crash loops and leftovers as the runner sees them.

The tiers themselves are covered in tests/e2e/test_local_stack_supervision.py;
here one-line programs that fail on purpose, with ``start_seconds=1`` so a
crash loop takes seconds instead of minutes. Waits are bounded; nothing is
timed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stack_supervision.supervisord_config import TierProgram
from stack_supervision.supervisord_process import Supervisord
from stack_supervision.tier_watch import CrashLoop, TierWatch
from stack_supervision.up_log import UpLog

BOUND_S = 60.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Run:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir()
        self.up_log = UpLog(self.log_dir / "up.log")
        self.supervisord: Supervisord | None = None

    def start(self, *python_args: str, max_restarts: int = 5) -> TierWatch:
        """Supervise ``python *python_args`` as program "job"; the watch that follows it."""
        program = TierProgram(
            "job",
            "test job",
            [sys.executable, *python_args],
            self.log_dir / "job.log",
            priority=100,
            start_seconds=1,
        )
        self.supervisord = Supervisord([program], self.log_dir, self.tmp_path)
        self.supervisord.start(os.environ)
        return TierWatch(self.supervisord, [program], self.up_log, max_restarts, 60.0)

    def stop(self) -> None:
        if self.supervisord is not None:
            self.supervisord.stop()
        self.up_log.close()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    run = Run(tmp_path)
    yield run
    run.stop()


def _until_crash_loop(watch: TierWatch) -> CrashLoop:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        crash_loop = watch.poll()
        if crash_loop is not None:
            return crash_loop
        time.sleep(0.25)
    raise AssertionError(f"no crash loop reported within {BOUND_S:.0f}s")


def _until(condition: Callable[[], object], watch: TierWatch, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        assert watch.poll() is None
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_program_that_cannot_start_is_reported_with_its_exit_status(run: Run) -> None:
    watch = run.start("-c", "print('cannot read my config', flush=True); raise SystemExit(7)")
    crash_loop = _until_crash_loop(watch)
    assert crash_loop.reason == "exit status 7"
    report = crash_loop.report()
    assert report.startswith("test job is in a crash loop: it failed to start 4 times in a row")
    assert "cannot read my config" in report  # the program's own last lines
    up_log = (run.log_dir / "up.log").read_text()
    assert [f"(retry {n} of 3)" in up_log for n in (1, 2, 3)] == [True] * 3


def test_a_program_that_keeps_dying_after_starting_is_a_crash_loop(run: Run) -> None:
    # Runs past start_seconds each time, so Supervisor restarts it at once, forever.
    watch = run.start("-c", "import time; time.sleep(2.5); raise SystemExit(9)", max_restarts=2)
    crash_loop = _until_crash_loop(watch)
    assert crash_loop.reason == "exit status 9"
    assert "it exited 3 times within 1 min" in crash_loop.report()
    up_log = (run.log_dir / "up.log").read_text()
    assert "restart 1 of at most 2 within 1 min" in up_log
    assert "restart 2 of at most 2 within 1 min" in up_log


def test_what_a_killed_program_leaves_behind_is_killed_and_stop_leaves_nothing(
    run: Run,
) -> None:
    # Like uvicorn's workers: a child in the program's process group that outlives it.
    child_pid_file = run.tmp_path / "child.pid"
    script = run.tmp_path / "leaves_a_child.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    f.write(f'{child.pid}\\n')\n"
        "time.sleep(300)\n"
    )
    watch = run.start(str(script), str(child_pid_file))
    assert run.supervisord is not None

    def children() -> list[int]:
        text = child_pid_file.read_text() if child_pid_file.exists() else ""
        return [int(pid) for pid in text.split()]

    _until(lambda: children(), watch, "the first child")
    parent = run.supervisord.processes()["job"].pid
    first_child = children()[0]
    os.kill(parent, signal.SIGKILL)
    _until(lambda: not _alive(first_child), watch, "the orphaned child to be killed")
    assert f"killed what pid {parent} left running" in (run.log_dir / "up.log").read_text()
    _until(lambda: len(children()) == 2, watch, "the restarted program's child")
    restarted = run.supervisord.processes()["job"].pid
    run.supervisord.stop()
    left = [pid for pid in (parent, restarted, *children()) if _alive(pid)]
    assert not left, left
