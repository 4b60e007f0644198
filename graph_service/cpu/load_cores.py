"""Keep a loading version on one core and the serving threads on the others.

A load is CPU-bound for a while. Lowering its priority (low_priority.py) makes
the scheduler *prefer* a serving thread, but it does not make it switch at once:
a thread woken onto a core that runs CPU-bound work waits for that core's next
tick before it runs (up to 4 ms at HZ=250), and gRPC wakes several threads per
call (grpcio's completion-queue thread, then the event loop). Whenever one of
those wake-ups lands on the loader's core, the request pays the tick; at
concurrency 1 that was most of the p99 growth during a load.

So while a load runs, its threads are confined to one core and every other
thread of the process to the rest; afterwards all threads get the process's
cores back. Threads started during the load inherit the side of the thread
that started them and are put back with the rest. On a machine (or cpuset)
with a single core there is nothing to split and this does nothing.

Measured on the 2-core bench machine, no-op grpc.aio server at concurrency 1,
another process burning one core 135 ms in every 1.25 s: p99 during the burns
3.9x steady state when nothing is pinned, 0.94x with the server on one core
and the burner on the other. With real loads (graph_service, gRPC,
concurrency 1, 16 loads, two alternating runs each): 2.65x and 2.07x without
the split, 1.33x and 1.77x with it. While a load runs, serving has one core
fewer; at concurrency 8 over REST that cost showed (0.74x before, 1.33x after,
still within 1.5x).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator

from graph_service.cpu.load_pacing import no_pacing
from graph_service.cpu.thread_names import process_thread_ids

log = logging.getLogger("graph_service")


def _pin(tid: int, cores: set[int]) -> None:
    # A thread may have exited since it was listed, or not be ours to move.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.sched_setaffinity(tid, cores)


class LoadCores:
    """Splits the process's cores between loads and serving while a load runs.

    Only one load runs at a time (the manager has one loader thread); a nested
    or concurrent ``loading()`` is refused by the lock rather than interleaved.
    """

    def __init__(self, enabled: bool = True) -> None:
        cores = _process_cores() if enabled else set()
        self._all = cores
        self._load = {max(cores)} if len(cores) > 1 else set()
        self._serving = cores - self._load
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._load)

    @contextlib.contextmanager
    def loading(
        self, loader_threads: Iterable[int], pace: Callable[[], None] = no_pacing
    ) -> Iterator[None]:
        """Within this block ``loader_threads`` run on the load core, all others not.

        Each move is a system call made with the GIL held; ``pace`` is offered a
        pause after each, so a request needing the GIL does not wait for them all.
        """
        if not self._load:
            yield
            return
        loaders = set(loader_threads)
        with self._lock:
            for tid in process_thread_ids():
                _pin(tid, self._load if tid in loaders else self._serving)
                pace()
            try:
                yield
            finally:
                for tid in process_thread_ids():
                    _pin(tid, self._all)
                    pace()


def _process_cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError) as exc:
        log.info("no CPU affinity on this platform (%s); loads share all cores", exc)
        return set()
