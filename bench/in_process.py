"""The model with no network in front: what the session path alone can deliver.

Uses the server's own ``Servable`` (session + ``make_callable``) so the number is
the graph tier's compute cost, not a different way of calling TensorFlow.
Without batching, ``concurrency`` threads call the model directly; with
batching, as many asyncio callers go through ``BatchScheduler`` exactly as
the server's front ends do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np

from bench.load_client import LoadResult
from graph_service.batching.batcher import BatchScheduler
from graph_service.batching.batching_config import BatchingParameters

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def measure_threads(
    predict: Predict,
    inputs: dict[str, np.ndarray],
    concurrency: int,
    warmup: float,
    duration: float,
) -> LoadResult:
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    per_thread: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    cpu_before = time.process_time()

    def worker(latencies: list[float]) -> None:
        clock = time.perf_counter
        while True:
            started = clock()
            if started >= stop_at:
                return
            try:
                predict(inputs)
            except Exception as err:  # counted, never fatal to the run
                errors.append(repr(err))
                continue
            if started >= measure_from:
                latencies.append(clock() - started)

    threads = [threading.Thread(target=worker, args=(lat,)) for lat in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _result(per_thread, errors, duration, time.process_time() - cpu_before, warmup)


def measure_batched(
    predict: Predict,
    inputs: dict[str, np.ndarray],
    params: BatchingParameters,
    concurrency: int,
    warmup: float,
    duration: float,
) -> LoadResult:
    scheduler = BatchScheduler(params)
    queue = scheduler.queue("in-process", predict)
    per_caller: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    cpu_before = time.process_time()

    async def main() -> None:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def caller(latencies: list[float]) -> None:
            clock = time.perf_counter
            while True:
                started = clock()
                if started >= stop_at:
                    return
                try:
                    await queue.submit(inputs)
                except Exception as err:  # counted, never fatal to the run
                    errors.append(repr(err))
                    continue
                if started >= measure_from:
                    latencies.append(clock() - started)

        await asyncio.gather(*(caller(lat) for lat in per_caller))

    try:
        import uvloop

        uvloop.run(main())
    finally:
        scheduler.close(timeout=30)
    return _result(per_caller, errors, duration, time.process_time() - cpu_before, warmup)


def _result(
    per_caller: list[list[float]], errors: list[str], duration: float, cpu: float, warmup: float
) -> LoadResult:
    latencies = np.asarray([x for lat in per_caller for x in lat], dtype=np.float64)
    return LoadResult(
        latencies=latencies,
        starts=np.zeros(0),
        errors=len(errors),
        error_samples=errors[:5],
        duration=duration,
        client_cpu_seconds=cpu * duration / (warmup + duration),
    )
