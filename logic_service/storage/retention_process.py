"""A retention pass in a child process: its Python work never holds a serving worker's GIL.

The pass deletes in small, paced batches, but each batch still runs Python
(SQLAlchemy compiling, the driver, the row ids) on the thread that runs it. In
a thread of a serving worker that time is taken from requests under the GIL;
the prediction-log bench measured p99 up 15 % during passes that way. So the
lease holder (``Retention``, in the worker) only decides *when*; the pass runs
in ``python -m logic_service.storage.retention_process OWNER``, started at a
lower CPU priority and, where util-linux's ``ionice`` exists, disk priority
(best effort, lowest level). The CPU priority is Linux's SCHED_IDLE where
util-linux's ``chrt`` can set it (``retention.idle_cpu``), else
``nice -n retention.nice``. Why SCHED_IDLE: a niced process still keeps the
CPU until the scheduler's next decision when a request's thread wakes, and on
two cores the prediction-log bench measured p99 up 49-50 % on SQLite during
passes at nice 10 against 8-15 % under SCHED_IDLE, which the kernel preempts
for any normal thread at once. It reads the
worker's ``StorageSettings`` as JSON on stdin (a database password stays out
of argv), renews the worker's lease under the worker's owner name, and prints
its report as one JSON line. SIGTERM (the worker stopping) ends it after the batch under
way.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, fields
from threading import Event

from logic_service.settings.storage import StorageSettings
from logic_service.storage.database import open_database
from logic_service.storage.retention import Retention, RetentionReport

MODULE = "logic_service.storage.retention_process"
STOP_WAIT_S = 30.0


@functools.cache
def _idle_command() -> tuple[str, ...]:
    """``chrt --idle 0`` if it works here (tried once on ``true``), else nothing.

    Tried rather than assumed: a seccomp profile or an old kernel may refuse
    the policy, and a pass that cannot start is worse than a niced one.
    """
    chrt = shutil.which("chrt")
    true = shutil.which("true")
    if not chrt or not true or not sys.platform.startswith("linux"):
        return ()
    line = (chrt, "--idle", "0")
    try:
        tried = subprocess.run([*line, true], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return line if tried.returncode == 0 else ()


def command(owner: str, nice: int, idle_cpu: bool = True) -> list[str]:
    """The child's command line: its priorities first, where the machine has the tools.

    Set from exec, not from its own ``main``: the child's start (importing
    SQLAlchemy and pydantic, ~0.5 s of CPU) would otherwise run at serving's
    priority once a pass.
    """
    line = [sys.executable, "-m", MODULE, owner]
    ionice = shutil.which("ionice")
    if ionice:  # -t: a container that may not set I/O priority still runs the pass
        line = [ionice, "-c", "2", "-n", "7", "-t", *line]
    renice = shutil.which("nice")
    if nice and renice:  # ignored under SCHED_IDLE; what holds where chrt is missing or refused
        line = [renice, "-n", str(nice), *line]
    if idle_cpu:
        line = [*_idle_command(), *line]
    return line


def run_in_child(storage: StorageSettings, owner: str, stopping: Event) -> RetentionReport:
    """One pass in a child process; ``stopping`` set: the child ends after its batch.

    The child inherits the working directory, so a relative SQLite path means
    what it means here.

    Raises RuntimeError with the child's own words when it fails.
    """
    child = subprocess.Popen(
        command(owner, storage.retention.nice, storage.retention.idle_cpu),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    given: bytes | None = storage.model_dump_json().encode()
    while True:
        try:
            # the settings go in on the first call; a retry after a timeout loses nothing
            out, err = child.communicate(given, timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            given = None
            if stopping.is_set():
                child.terminate()
                out, err = child.communicate(timeout=STOP_WAIT_S)
                break
    if child.returncode != 0 and not stopping.is_set():
        raise RuntimeError(
            f"retention pass exited {child.returncode}: {err.decode(errors='replace')[-2000:]}"
        )
    lines = out.decode().strip().splitlines()
    if not lines:
        return RetentionReport(completed=False)
    found = json.loads(lines[-1])
    known = {f.name for f in fields(RetentionReport)}
    return RetentionReport(**{k: v for k, v in found.items() if k in known})


def _policy_name() -> str:
    policy = os.sched_getscheduler(0)
    return {getattr(os, "SCHED_IDLE", -1): "idle", os.SCHED_OTHER: "other"}.get(policy, str(policy))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {MODULE} OWNER < storage-settings.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    storage = StorageSettings.model_validate_json(sys.stdin.read())
    engine = open_database(
        storage.database_url,
        storage.busy_timeout_ms,
        password_file=storage.database_password_file,
        migrate=False,  # the serving worker brought the schema to head
    )
    retention = Retention(engine, storage.retention, owner=args[0])
    signal.signal(signal.SIGTERM, lambda *_: retention.stopping.set())
    report = retention.run_pass()
    engine.dispose()
    ran_as = {"nice": os.getpriority(os.PRIO_PROCESS, 0), "cpu_policy": _policy_name()}
    print(json.dumps(asdict(report) | ran_as), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
