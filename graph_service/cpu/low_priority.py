"""One thread at the lowest CPU priority, for the heavy part of loading a version.

Loading a SavedModel is mostly C++ (graph construction, Grappler, the restore
and init runs, the first run of each warmup signature) that holds no GIL; on a
machine with few cores it still takes a core from the requests of the versions
already serving, and their tail latency grows. Running those C calls on an
idle-class thread (``SCHED_IDLE``; nice 19 where that is missing) lets the
scheduler give the serving threads the CPU whenever they want it; the load just
takes a little longer.

Only the GIL-free C calls run here. Python work stays on the normal-priority
loader thread: a low-priority thread holding the GIL while the scheduler leaves
it waiting would stall every request (priority inversion). TensorFlow's shared
thread pools must already exist when this thread first creates a session,
because threads inherit their creator's priority (``Servable.prepare_runtime``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from graph_service.cpu.thread_names import name_os_thread

log = logging.getLogger("graph_service")

T = TypeVar("T")

LOWEST_PRIORITY = 19  # nice value, where SCHED_IDLE is not available


def _lower_this_thread() -> None:
    """SCHED_IDLE where the OS has it, else the highest nice value.

    SCHED_IDLE rather than nice 19: the scheduler treats a core that runs only
    idle-class threads as idle, so a serving thread that wakes up is placed there
    and runs at once. With nice 19 it was often queued behind another thread on
    the other core instead (p99 during loads 8 ms against 4 ms, no-op gRPC server
    at concurrency 1 on the 2-core bench machine).
    """
    name_os_thread()
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    try:
        # On Linux PRIO_PROCESS with a thread id sets that one thread's nice value.
        os.setpriority(os.PRIO_PROCESS, tid, LOWEST_PRIORITY)
    except (AttributeError, OSError) as exc:
        log.warning(
            "cannot lower the loading thread's CPU priority (%s); loads run at normal priority",
            exc,
        )


class LowPriorityWorker:
    """Runs callables one at a time on its own lowest-priority thread."""

    def __init__(self, name: str = "servable-load") -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=_lower_this_thread)
        self._thread_id: int | None = None

    @property
    def thread_id(self) -> int:
        """The worker's OS thread id (it starts the thread if it has not run yet).

        Asked once and kept: the pool's one thread lives as long as the pool, and
        each round trip to it is a wake-up of an idle-class thread that then needs
        the GIL, at the start of every load.
        """
        if self._thread_id is None:
            self._thread_id = self.call(threading.get_native_id)
        return self._thread_id

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` there and return its result (or raise its exception)."""
        future: Future[T] = self._pool.submit(fn, *args)
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
