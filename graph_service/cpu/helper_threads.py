"""Helper threads wake up without taking the CPU from the event-loop thread.

Every request passes through the one event-loop thread (it holds the GIL while
it parses, validates and answers), and each one also wakes helper threads:
the batch thread (the scheduler's condition variable), grpcio's completion-
queue and event-engine threads, TensorFlow's pools. On a machine with few
cores Linux often places the woken thread on the loop's core and preempts the
loop for it; the woken thread then needs the GIL the preempted loop still
holds, blocks, and the loop comes back: two context switches and a cold cache
per wake-up, many times per batch. Seen on the 2-core bench machine as the loop
thread runnable 95 % of the time yet on a CPU only 75 %, with its samples
piling up on the first system call after each wake-up.

``SCHED_BATCH`` is the Linux policy for exactly this: the thread keeps its full
share of the CPU (same nice value, same weight) but, when it wakes, it does not
preempt the running thread; it runs when a core is free or at the next tick.
The loop then gives up the CPU only where it blocks anyway (epoll, the GIL).

Idle-class threads (the loading worker of low_priority.py) stay idle-class:
batch would raise them. Threads started later inherit their creator's policy,
so those that helpers start are batch-class too; the few the loop itself
starts later (the asyncio default executor for config reloads) are not hot.
"""

from __future__ import annotations

import contextlib
import os

from graph_service.cpu.thread_names import process_thread_ids


def make_batch_class(tid: int) -> bool:
    """Put thread ``tid`` of this process in SCHED_BATCH unless it is idle-class."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    # A thread may have exited since it was listed, or not be ours to change.
    with contextlib.suppress(OSError):
        if os.sched_getscheduler(tid) != os.SCHED_OTHER:
            return False  # idle-class (or real-time): not ours to raise or lower
        os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        return True
    return False


def yield_to_loop(loop_thread: int) -> int:
    """Every normal thread of this process but ``loop_thread`` becomes batch-class.

    Returns how many threads changed (0 where the platform has no SCHED_BATCH).
    """
    return sum(make_batch_class(tid) for tid in process_thread_ids() if tid != loop_thread)


def batch_class_this_thread() -> None:
    """For thread pools the loop starts later (``initializer=``)."""
    make_batch_class(0)  # 0: the calling thread
