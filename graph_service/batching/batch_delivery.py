"""Getting batch results back to the callers that are waiting for them.

Batch threads finish work for callers on asyncio loops (the gRPC and REST front
ends) and on plain threads. A result for an asyncio future must be set on its
own loop, so a batch's outcomes are grouped per loop and handed over with one
``call_soon_threadsafe`` each -- one loop wake-up per batch, not per request.
A request that large-batch splitting cut into parts is answered once, when its
last part is back (or at the first failure).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from graph_service.batching import batch_tensors

Outcome = tuple[asyncio.Future, object, BaseException | None]


class Delivery:
    """Where one task's result goes: a future, and its loop (None for thread callers)."""

    __slots__ = ("future", "loop")

    def __init__(
        self,
        future: asyncio.Future | concurrent.futures.Future,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.future = future
        self.loop = loop

    @property
    def abandoned(self) -> bool:
        """The caller gave up (its future was cancelled: deadline, disconnect).

        asyncio and concurrent futures both answer ``cancelled()``; a split
        request's parts share their parent's future, so a caller that gave up
        abandons every part. Read from a batch thread without the loop's help: a
        stale False only means one more row is computed, as before; cancellation
        never un-happens.
        """
        return self.future.cancelled()

    def finish(self, result: object, error: BaseException | None) -> None:
        """Settle now; only called for deliveries without a loop."""
        future = self.future
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class SplitDelivery:
    """Collects the parts of one request spread over several batches."""

    __slots__ = ("lock", "parent", "parts", "pending", "sizes")

    def __init__(self, parent: Delivery, sizes: list[int]) -> None:
        self.parent = parent
        self.sizes = sizes
        self.parts: list[Mapping[str, np.ndarray] | None] = [None] * len(sizes)
        self.pending = len(sizes)
        self.lock = threading.Lock()

    def part(self, index: int) -> Delivery:
        return _PartDelivery(self, index)


class _PartDelivery(Delivery):
    __slots__ = ("index", "split")

    def __init__(self, split: SplitDelivery, index: int) -> None:
        super().__init__(split.parent.future, None)
        self.split = split
        self.index = index

    def finish(self, result: object, error: BaseException | None) -> None:
        split = self.split
        with split.lock:
            if split.pending == 0:  # an earlier part failed and already answered
                return
            if error is not None:
                split.pending = 0
            else:
                split.parts[self.index] = result  # type: ignore[assignment]
                split.pending -= 1
                if split.pending:
                    return
        if error is None:
            result = batch_tensors.concat_parts(split.parts, split.sizes)  # type: ignore[arg-type]
        deliver([split.parent], None if error else [result], error)


def settle(outcomes: list[Outcome]) -> None:
    """Runs on the caller's loop: set each future unless its caller gave up."""
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def deliver(
    deliveries: Sequence[Delivery],
    results: Sequence[object] | None,
    error: BaseException | None,
) -> None:
    """Answer every delivery with its result, or all of them with ``error``."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for index, delivery in enumerate(deliveries):
        result = None if results is None else results[index]
        loop = delivery.loop
        if loop is None:
            delivery.finish(result, error)
        else:
            by_loop.setdefault(loop, []).append((delivery.future, result, error))  # type: ignore[arg-type]
    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: its callers are gone
            loop.call_soon_threadsafe(settle, outcomes)
