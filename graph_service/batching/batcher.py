"""Server-side batching: TF Serving's SharedBatchScheduler, in Python.

One ``BatchScheduler`` per server owns ``num_batch_threads`` worker threads shared
by all its queues (one queue per model version, signature and tensor names).
Requests submitted to a queue join its open batch; a worker takes a batch when
it is full (``max_execution_batch_size`` rows), when ``batch_timeout_micros`` has
passed since its first task, or at once with a timeout of 0 -- which still merges
every request that arrived while all workers were busy. That last case is where
batching pays off: under load the workers are busy, the open batch fills, and the
next ``run`` serves many callers for the price of one TensorFlow call.

Workers are plain threads waiting on a condition variable (no polling): ``run``
is a blocking session call that releases the GIL, and threads let callers on any
event loop -- or none -- share one set of queues. Results go back to asyncio
callers with one ``call_soon_threadsafe`` per loop per batch.

A full queue (``max_enqueued_batches``) answers UNAVAILABLE immediately with TF
Serving's message instead of piling requests up; a request larger than
``max_batch_size`` is INVALID_ARGUMENT, or is split over several batches when
``enable_large_batch_splitting`` is on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import numpy as np

from graph_service.batching import batch_tensors
from graph_service.batching.batch_delivery import Delivery, SplitDelivery, deliver
from graph_service.batching.batching_config import BatchingParameters
from graph_service.errors import ServingError, invalid_argument, unavailable

logger = logging.getLogger(__name__)

Tensors = Mapping[str, np.ndarray]
RunFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class BatchRecord:
    """What one executed batch looked like, for metrics and tests."""

    key: Hashable
    size: int  # real rows
    padded_size: int  # rows handed to ``run`` (allowed_batch_sizes padding)
    num_tasks: int


OnBatch = Callable[[BatchRecord], None]


class _Task:
    """One request (or one part of a split request) waiting in a batch."""

    __slots__ = ("deliver", "inputs", "signature", "size")

    def __init__(self, inputs: Tensors, size: int, signature: tuple, deliver: Delivery) -> None:
        self.inputs = inputs
        self.size = size
        self.signature = signature
        self.deliver = deliver


class _Batch:
    __slots__ = ("signature", "size", "start", "tasks")

    def __init__(self) -> None:
        self.tasks: list[_Task] = []
        self.size = 0
        self.start = 0.0
        self.signature: tuple | None = None


class BatchQueue:
    """The queue of one (model, version, signature, inputs, outputs) key."""

    def __init__(self, scheduler: BatchScheduler, key: Hashable, run: RunFn) -> None:
        self._scheduler = scheduler
        self.key = key
        self.run = run
        self._batches: deque[_Batch] = deque([_Batch()])
        self._in_flight = 0
        self._enqueued_tasks = 0
        self.closed = False

    @property
    def num_enqueued_tasks(self) -> int:
        """Tasks waiting for a worker (not counting batches being run)."""
        return self._enqueued_tasks

    def submit(self, inputs: Tensors) -> asyncio.Future:
        """Queue ``inputs`` from a coroutine; await the result.

        Raises ServingError at once (before anything is awaited) when the queue is
        full (UNAVAILABLE) or the request is too large (INVALID_ARGUMENT).
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._scheduler._enqueue(self, inputs, Delivery(future, loop))
        return future

    def call(self, inputs: Tensors, timeout: float | None = None) -> dict[str, np.ndarray]:
        """Blocking variant of ``submit`` for callers on plain threads."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._scheduler._enqueue(self, inputs, Delivery(future, None))
        return future.result(timeout)

    def close(self) -> None:
        """Refuse new requests; queued ones still run, then the queue goes away."""
        self._scheduler._close_queue(self)


class BatchScheduler:
    """Shared batch threads over any number of ``BatchQueue``s (round-robin)."""

    def __init__(
        self,
        params: BatchingParameters,
        *,
        on_batch: OnBatch | None = None,
    ) -> None:
        """``on_batch`` runs on a batch thread before each ``run``; it must be quick
        and must not call back into the scheduler (a Prometheus ``observe`` is the
        intended use)."""
        self.params = params
        self._on_batch = on_batch
        self._cond = threading.Condition(threading.Lock())
        self._queues: list[BatchQueue] = []  # round-robin order, draining ones included
        self._by_key: dict[Hashable, BatchQueue] = {}
        self._next = 0
        self._closed = False
        self._timeout = params.batch_timeout_micros / 1e6
        self._max_exec = params.max_execution_batch_size
        self._threads = [
            threading.Thread(
                target=self._worker, name=f"{params.thread_pool_name}_{i}", daemon=True
            )
            for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    # -- queues -------------------------------------------------------------

    def queue_depths(self) -> list[tuple[Hashable, int]]:
        """(key, tasks waiting for a worker) of every queue, closed ones still draining.

        Read when metrics are scraped rather than pushed on every enqueue and
        dequeue: the push cost the serving loop a few percent of a batched request.
        """
        with self._cond:
            return [
                (q.key, q._enqueued_tasks)
                for q in self._queues
                if not q.closed or q._enqueued_tasks
            ]

    def queue(self, key: Hashable, run: RunFn) -> BatchQueue:
        """The queue for ``key``, created on first use with ``run`` as its model call.

        Later calls with the same key return the same queue (and ignore ``run``)
        until ``remove(key)``; call that when the version behind ``run`` unloads.
        """
        with self._cond:
            if self._closed:
                raise unavailable("The batch scheduler is shut down")
            existing = self._by_key.get(key)
            if existing is not None and not existing.closed:
                return existing
            created = BatchQueue(self, key, run)
            self._by_key[key] = created
            self._queues.append(created)
            return created

    def remove(self, key: Hashable) -> None:
        """Close the queue for ``key`` (if any), e.g. when its version unloads."""
        with self._cond:
            existing = self._by_key.get(key)
        if existing is not None:
            existing.close()

    def _close_queue(self, queue: BatchQueue) -> None:
        with self._cond:
            queue.closed = True
            if self._by_key.get(queue.key) is queue:
                del self._by_key[queue.key]
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting requests, finish the queued ones, stop the threads."""
        with self._cond:
            self._closed = True
            for queue in self._queues:
                queue.closed = True
            self._by_key.clear()
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # -- submission (caller's thread) ----------------------------------------

    def _enqueue(self, queue: BatchQueue, inputs: Tensors, delivery: Delivery) -> None:
        params = self.params
        size = batch_tensors.task_size(inputs)
        if size > params.max_batch_size:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size {params.max_batch_size}"
            )
        signature = batch_tensors.merge_signature(inputs, params.pad_variable_length_inputs)
        max_exec = self._max_exec
        with self._cond:
            if queue.closed:
                raise unavailable(
                    "The batch scheduling queue to which this task was submitted is closed"
                )
            batches = queue._batches
            open_batch = batches[-1]
            compatible = open_batch.signature is None or open_batch.signature == signature
            room = max_exec - open_batch.size if compatible else 0
            if params.enable_large_batch_splitting:
                capacity = (params.max_enqueued_batches - len(batches)) * max_exec + room
                if size > capacity:
                    raise unavailable(
                        "The batch scheduling queue to which this task was submitted is full; "
                        f"task size is {size} but scheduling capacity is only {capacity} "
                        f"(num_enqueued_batches={len(batches)}, max_enqueued_batches="
                        f"{params.max_enqueued_batches}, open_batch_size={open_batch.size}, "
                        f"max_execution_batch_size={max_exec})"
                    )
                if size > room and size > 0:
                    self._add_split(queue, inputs, size, signature, room, delivery)
                else:
                    self._add(queue, _Task(inputs, size, signature, delivery))
            else:
                needs_new_batch = size > room or not compatible
                if needs_new_batch and len(batches) >= params.max_enqueued_batches:
                    raise unavailable(
                        "The batch scheduling queue to which this task was submitted is full; "
                        f"currently {len(batches)} batches enqueued and max_enqueued_batches "
                        f"is {params.max_enqueued_batches}"
                    )
                self._add(queue, _Task(inputs, size, signature, delivery))

    def _add(self, queue: BatchQueue, task: _Task) -> None:
        """Append ``task`` to the open batch, starting a new one if it does not fit."""
        batches = queue._batches
        open_batch = batches[-1]
        if open_batch.tasks and (
            open_batch.size + task.size > self._max_exec or open_batch.signature != task.signature
        ):
            open_batch = _Batch()
            batches.append(open_batch)
            self._cond.notify()  # the previous batch is now closed: schedulable
        if not open_batch.tasks:
            open_batch.start = time.monotonic()
            open_batch.signature = task.signature
            self._cond.notify()  # new work, or a new deadline to wait for
        open_batch.tasks.append(task)
        open_batch.size += task.size
        queue._enqueued_tasks += 1
        if open_batch.size >= self._max_exec and len(batches) == 1:
            self._cond.notify()

    def _add_split(
        self,
        queue: BatchQueue,
        inputs: Tensors,
        size: int,
        signature: tuple,
        room: int,
        delivery: Delivery,
    ) -> None:
        sizes = [room] if room > 0 else []
        rest = size - room
        while rest > 0:
            sizes.append(min(rest, self._max_exec))
            rest -= sizes[-1]
        split = SplitDelivery(delivery, sizes)
        start = 0
        for index, part_size in enumerate(sizes):
            part = {name: array[start : start + part_size] for name, array in inputs.items()}
            start += part_size
            self._add(queue, _Task(part, part_size, signature, split.part(index)))

    # -- batch threads -------------------------------------------------------

    def _take_locked(self, now: float) -> tuple[BatchQueue | None, _Batch | None, float | None]:
        """Next schedulable batch (round-robin), else the earliest open-batch deadline."""
        queues = self._queues
        deadline: float | None = None
        count = len(queues)
        for step in range(count):
            index = (self._next + step) % count
            queue = queues[index]
            batches = queue._batches
            front = batches[0]
            if len(batches) > 1:
                batch = batches.popleft()
            elif front.tasks and (
                front.size >= self._max_exec or queue.closed or now - front.start >= self._timeout
            ):
                batch = batches.popleft()
                batches.append(_Batch())
            else:
                if front.tasks:
                    due = front.start + self._timeout
                    if deadline is None or due < deadline:
                        deadline = due
                continue
            self._next = (index + 1) % count
            queue._in_flight += 1
            queue._enqueued_tasks -= len(batch.tasks)
            if any(q._batches[0].tasks for q in queues):
                # Hand the remaining work (or its deadline) to another idle thread
                # rather than leaving it until this one has run its batch.
                self._cond.notify()
            return queue, batch, None
        return None, None, deadline

    def _drop_drained_locked(self) -> None:
        kept = [
            q
            for q in self._queues
            if not (
                q.closed and q._in_flight == 0 and not q._batches[0].tasks and len(q._batches) == 1
            )
        ]
        if len(kept) != len(self._queues):
            self._queues = kept
            self._next = 0

    def _worker(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while True:
                    queue, batch, deadline = self._take_locked(time.monotonic())
                    if batch is not None:
                        break
                    self._drop_drained_locked()
                    if self._closed and not self._queues:
                        return
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    cond.wait(wait)
            try:
                self._process(queue, batch)
            finally:
                with cond:
                    queue._in_flight -= 1
                    if queue.closed:
                        self._drop_drained_locked()
                        cond.notify_all()

    def _process(self, queue: BatchQueue, batch: _Batch) -> None:
        tasks = batch.tasks
        real_size = batch.size
        live = [t for t in tasks if not t.deliver.abandoned]
        if len(live) < len(tasks):
            # Callers that gave up while queued (their deadline passed, or they
            # went away) get no rows: under overload, computing answers nobody
            # reads is how a queue stays full. A batch of only those never runs.
            if not live:
                return
            tasks = live
            real_size = sum(t.size for t in live)
        params = self.params
        padded_size = batch_tensors.round_to_allowed(real_size, params.allowed_batch_sizes)
        if self._on_batch is not None:
            try:
                self._on_batch(BatchRecord(queue.key, real_size, padded_size, len(tasks)))
            except Exception:  # metrics must never fail a request
                logger.exception("on_batch callback failed")
        try:
            merged = batch_tensors.merge_inputs(
                [t.inputs for t in tasks], padded_size, real_size, params.pad_variable_length_inputs
            )
            outputs = queue.run(merged)
            results = batch_tensors.split_outputs(outputs, [t.size for t in tasks], padded_size)
        except Exception as error:  # reaches every caller of this batch
            if not isinstance(error, ServingError):
                logger.debug("batch for %r failed: %r", queue.key, error)
            deliver([t.deliver for t in tasks], None, error)
            return
        deliver([t.deliver for t in tasks], results, None)
