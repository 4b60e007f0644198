"""Helper threads run batch-class so their wake-ups do not preempt the event loop.

Run in a child interpreter: the policy of real OS threads changes, and the
pytest process's own threads (grpcio's, from other tests) must keep theirs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from graph_service.flags import parse_flags

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux-only"
)

CHILD = r"""
import json, os, threading
from graph_service.cpu.helper_threads import yield_to_loop, batch_class_this_thread
from graph_service.cpu.low_priority import LowPriorityWorker

ready, stop = threading.Event(), threading.Event()
tids = {}
def helper():
    tids["helper"] = threading.get_native_id()
    ready.set()
    stop.wait()
thread = threading.Thread(target=helper)
thread.start()
ready.wait()
idle = LowPriorityWorker()
tids["idle"] = idle.thread_id
moved = yield_to_loop(threading.get_native_id())
late = {}
def started_later():
    batch_class_this_thread()
    late["policy"] = os.sched_getscheduler(0)
t2 = threading.Thread(target=started_later); t2.start(); t2.join()
print(json.dumps({
    "moved": moved,
    "loop": os.sched_getscheduler(0),
    "helper": os.sched_getscheduler(tids["helper"]),
    "idle": os.sched_getscheduler(tids["idle"]),
    "late": late["policy"],
}))
stop.set(); thread.join(); idle.close()
"""


def test_every_thread_but_the_loop_becomes_batch_class_and_idle_ones_stay_idle() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loop"] == os.SCHED_OTHER
    assert got["helper"] == os.SCHED_BATCH
    assert got["idle"] == os.SCHED_IDLE  # batch would raise the loading worker
    assert got["late"] == os.SCHED_BATCH
    assert got["moved"] >= 1


def test_flag_defaults_on_and_can_be_turned_off() -> None:
    assert parse_flags([]).batch_class_helper_threads is True
    assert parse_flags(["--batch_class_helper_threads=false"]).batch_class_helper_threads is False
