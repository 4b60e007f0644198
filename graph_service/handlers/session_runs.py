"""A request's session run: where it executes, within the caller's deadline, timed.

``SessionRuns`` sends each run to its version's batch queue, to the event loop
(when run placement has proven it short) or to the ``graph-run`` pool, and owns
the batch queues' lifetime. ``Runner`` is the callable any of them calls with the
inputs: it times the run for the metrics and for placement. ``time_left`` turns
the caller's deadline into the run's timeout and refuses a run whose deadline
has already passed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import grpc

from graph_service.cpu.helper_threads import batch_class_this_thread
from graph_service.cpu.thread_names import name_os_thread
from graph_service.errors import ServingError
from graph_service.handlers.request_deadline import current_deadline
from graph_service.inference.prediction import PreparedRun
from graph_service.monitoring import Metrics
from graph_service.runtime.run_placement import RunPlacement, numeric_elements
from graph_service.runtime.servable import Servable

if TYPE_CHECKING:
    from graph_service.batching.batcher import BatchQueue, BatchScheduler


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` for the session run's timeout; None for no deadline.

    A request whose deadline passed while it waited for a thread is not run at all.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise ServingError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded: the request's deadline passed before its session run began",
        )
    return left


class Runner:
    """One TensorFlow call of a servable's signature (direct, or a batch queue's call).

    It times the session run alone, so operators can tell the model's own time
    from queueing, batching and protocol overhead, and so ``RunPlacement`` learns
    which signatures are short. Direct calls on the pool carry the request's
    deadline; a batch serves many callers and runs without one, and so does a run
    on the event loop (it is short by evidence; see run_placement.py).
    """

    __slots__ = (
        "deadline", "elements", "metrics", "outputs", "placement", "servable", "signature_name",
    )  # fmt: skip

    def __init__(
        self,
        servable: Servable,
        prepared: PreparedRun,
        metrics: Metrics | None,
        deadline: float | None = None,
        placement: RunPlacement | None = None,
        elements: int | None = None,
    ) -> None:
        self.servable = servable
        self.signature_name = prepared.signature_name
        self.outputs = prepared.output_aliases
        self.metrics = metrics
        self.deadline = deadline
        self.placement = placement  # direct runs report their time to it
        self.elements = elements

    def __call__(self, inputs: dict) -> dict:
        timeout = time_left(self.deadline)
        if self.metrics is None and self.placement is None:
            return self.servable.run(self.signature_name, inputs, self.outputs, timeout_s=timeout)
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            return self.servable.run(self.signature_name, inputs, self.outputs, timeout_s=timeout)
        finally:
            seconds = time.perf_counter() - started
            servable = self.servable
            if self.placement is not None:
                # CPU time counts only where this thread ran the graph itself.
                cpu = time.thread_time() - cpu_started if timeout is None else None
                self.placement.record(servable, self.signature_name, self.elements, seconds, cpu)
            if self.metrics is not None:
                self.metrics.observe_runtime(
                    servable.name, servable.version, self.signature_name, seconds
                )


class SessionRuns:
    """Where a request's session run executes: a batch queue, the event loop or the run pool.

    With batching on, every run goes through its version's batch queue. Otherwise
    a run that ``RunPlacement`` has proven short runs on the event loop, with no
    hand-off at all, and the rest go to the ``graph-run`` pool with what is left
    of the caller's deadline.
    """

    def __init__(
        self,
        placement: RunPlacement,
        metrics: Metrics | None,
        batcher: BatchScheduler | None,
        *,
        request_threads: int,
        batch_class_helper_threads: bool,
        enforce_session_run_timeout: bool,
    ) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=max(request_threads, 1),
            thread_name_prefix="graph-run",
            initializer=_start_helper if batch_class_helper_threads else name_os_thread,
        )
        self._placement = placement
        self._metrics = metrics
        self._batcher = batcher
        self._enforce_timeout = enforce_session_run_timeout
        # Batch queues by (servable, signature, input aliases, outputs): see _open_queue.
        self._queues: dict[tuple, BatchQueue] = {}
        self._queues_lock = threading.Lock()

    def deadline(self) -> float | None:
        """The request's deadline for its session run, unless runs are not to be cut short."""
        return current_deadline() if self._enforce_timeout else None

    async def run(self, servable: Servable, prepared: PreparedRun) -> dict:
        """One graph call: through the batcher when enabled, else on the thread pool."""
        if self._batcher is not None:
            signature, outputs = prepared.signature_name, prepared.output_aliases
            lookup = (servable, signature, tuple(prepared.inputs), outputs)
            queue = self._queues.get(lookup)
            if queue is None or queue.closed:
                queue = self._open_queue(lookup, servable, prepared)
            return dict(await queue.submit(prepared.inputs))
        deadline = self.deadline()
        elements = numeric_elements(prepared.inputs)
        placement = self._placement
        if placement.on_loop(servable, prepared.signature_name, elements):
            time_left(deadline)  # past it: not run at all
            # Short by evidence, so run here without a timeout: no hand-off at all.
            return Runner(servable, prepared, self._metrics, None, placement, elements)(
                prepared.inputs
            )
        loop = asyncio.get_running_loop()
        run = Runner(servable, prepared, self._metrics, deadline, placement, elements)
        return await loop.run_in_executor(self.executor, run, prepared.inputs)

    def _open_queue(self, lookup: tuple, servable: Servable, prepared: PreparedRun) -> BatchQueue:
        """The batch queue of this version, signature and tensors, remembered by ``lookup``.

        Requests find their queue in one dict read; building the scheduler's key
        and taking its lock on every request was a visible part of a batched
        request's time on the loop.
        """
        key = (
            servable.name,
            servable.version,
            prepared.signature_name,
            frozenset(prepared.inputs),
            prepared.output_aliases,
        )
        queue = self._batcher.queue(key, Runner(servable, prepared, self._metrics))
        with self._queues_lock:
            self._queues[lookup] = queue
        return queue

    def close_queues(self, name: str, version: int) -> None:
        """Close the batch queues of a version that was unloaded."""
        if self._batcher is None:
            return
        with self._queues_lock:
            gone = [
                lookup
                for lookup in self._queues
                if (lookup[0].name, lookup[0].version) == (name, version)
            ]
            queues = [self._queues.pop(lookup) for lookup in gone]
        for queue in queues:
            queue.close()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _start_helper() -> None:
    name_os_thread()
    batch_class_this_thread()
