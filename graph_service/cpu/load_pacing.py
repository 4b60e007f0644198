"""Keeping a load's Python work in short slices, so serving threads get the GIL at once.

A version's heavy loading is C++ that holds no GIL (low_priority.py), but around
it the loader thread runs Python: pinning threads, reading the MetaGraphDef,
scanning its graph, decoding and replaying warmup records. Only one thread runs
Python at a time, and CPython hands the GIL to a waiting thread only when the
holder sleeps or blocks, or after the switch interval (1 ms in this server) has
passed. A request of a version already serving needs the GIL several times on
its way (after each socket read and write, after its session run), so while
the loader computes, each of those waits can take the whole interval. Short
ctypes calls make it worse: each releases the GIL for a moment, wakes the
waiting thread, takes the GIL back before that thread runs, and so starts the
waiter's interval over.

Traced on the 2-core bench machine (REST, concurrency 1, ``perf sched``): from
the end of the C++ load to the first warmup run the loader ran Python for about
1-2 ms without a pause, the event loop got the GIL in slivers between, and the
request in flight took 2-3 ms against 0.5 ms -- the slowest request of almost
every load. A switch interval of 0.1 ms during loads did not help (p99 ratio
1.73x against 1.67x, 4 interleaved runs): a C call such as a protobuf parse
holds the GIL to its end whatever the interval.

So the loader checks in (``Pacer.__call__``) between small steps, and once it
has held on for ``slice_s`` it sleeps ``pause_s``, longer while requests are in
flight: a waiting request then takes the GIL within about one slice, and the
load is longer by a few pauses (REST c=1 p99 during loads / steady: median
1.75x -> 1.45x over 5 interleaved runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLICE_S = 0.0001
PAUSE_S = 0.0001
MAX_YIELD_S = 0.001


class Pacer:
    """Call between steps of Python work; it sleeps once a slice of CPU has passed.

    With ``busy`` (are requests in flight?) it keeps pausing while they are, up
    to ``max_yield_s``, so the next slice mostly starts between requests rather
    than in the middle of one; under constant traffic the load still gets one
    slice per ``max_yield_s``.
    """

    __slots__ = ("_busy", "_since", "max_yield_s", "pause_s", "pauses", "slice_s")

    def __init__(
        self,
        slice_s: float = SLICE_S,
        pause_s: float = PAUSE_S,
        busy: Callable[[], bool] | None = None,
        max_yield_s: float = MAX_YIELD_S,
    ) -> None:
        self.slice_s = slice_s
        self.pause_s = pause_s
        self.max_yield_s = max_yield_s
        self.pauses = 0
        self._busy = busy
        self._since = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._since < self.slice_s:
            return
        until = now + self.max_yield_s
        busy = self._busy
        while True:
            time.sleep(self.pause_s)
            self.pauses += 1
            if busy is None or not busy() or time.perf_counter() >= until:
                break
        self._since = time.perf_counter()


def no_pacing() -> None:
    """For loads outside a server (tests, tools): nothing serves beside them."""
