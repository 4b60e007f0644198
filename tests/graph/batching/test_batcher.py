"""The batch scheduler under real concurrency, with real numpy and TensorFlow calls.

Where a test needs requests to pile up behind a busy batch thread, ``run`` blocks
on a gate until every caller has submitted; that makes the merging deterministic
without timing assumptions.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from graph_service.batching.batcher import BatchRecord, BatchScheduler
from graph_service.batching.batching_config import BatchingParameters
from graph_service.errors import ServingError

WAIT = 30.0  # generous bound for anything that should happen promptly


# A non-batched output: longer than any batch here, so its first dimension never
# equals a batch's size (a 3-entry vocab was split as rows whenever a batch held 3).
VOCAB = np.array([f"w{i}".encode() for i in range(129)])


class Model:
    """A numpy ``run``: y = 2x + 1 per row, a row-sum output and a non-batched vocab.

    Records every merged input it was called with; can hold the batch thread on a
    gate until the test has submitted everything.
    """

    def __init__(self, gated: bool = False) -> None:
        self.calls: list[dict[str, np.ndarray]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append({k: v.copy() for k, v in inputs.items()})
        self.entered.set()
        assert self.gate.wait(WAIT), "test never opened the gate"
        x = inputs["x"]
        return {
            "y": x * 2 + 1,
            "rowsum": x.reshape(x.shape[0], -1).sum(axis=1),
            "vocab": VOCAB,
        }


@pytest.fixture
def make_scheduler() -> Iterator[Callable[..., tuple[BatchScheduler, list[BatchRecord]]]]:
    created: list[BatchScheduler] = []

    def make(**overrides: object) -> tuple[BatchScheduler, list[BatchRecord]]:
        settings: dict[str, object] = {"max_batch_size": 32, "num_batch_threads": 1}
        settings.update(overrides)
        records: list[BatchRecord] = []
        scheduler = BatchScheduler(BatchingParameters(**settings), on_batch=records.append)
        created.append(scheduler)
        return scheduler, records

    yield make
    for scheduler in created:
        scheduler.close(timeout=WAIT)


def rows(start: int, count: int, width: int = 3) -> np.ndarray:
    """Rows whose values identify them: row i is [i, i + 0.25, i + 0.5, ...]."""
    base = np.arange(start, start + count, dtype=np.float32)[:, None]
    return base + np.arange(width, dtype=np.float32)[None, :] * 0.25


async def wait_entered(model: Model) -> None:
    assert await asyncio.to_thread(model.entered.wait, WAIT)


def test_concurrent_callers_each_get_their_own_rows_from_merged_batches(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=32, max_enqueued_batches=100)
    model = Model(gated=True)
    queue = scheduler.queue(("m", 1, "serving_default", ("x",), ("y",)), model)
    submitted = 0

    async def caller(index: int) -> None:
        nonlocal submitted
        x = rows(index * 10, 1 + index % 3)  # 1-3 rows each, distinct values
        pending = queue.submit({"x": x})
        submitted += 1
        if submitted == 200:
            model.gate.set()
        result = await pending
        np.testing.assert_array_equal(result["y"], x * 2 + 1)
        np.testing.assert_array_equal(result["rowsum"], x.sum(axis=1))
        assert result["vocab"].tolist() == VOCAB.tolist()

    async def main() -> None:
        await asyncio.gather(*(caller(i) for i in range(200)))

    asyncio.run(main())
    total_rows = sum(1 + i % 3 for i in range(200))
    assert len(model.calls) < 200 // 4  # merged, not one call per request
    assert sum(r.size for r in records) == total_rows
    assert sum(r.num_tasks for r in records) == 200
    assert all(r.size <= 32 for r in records)
    assert max(r.size for r in records) > 16
    assert sum(call["x"].shape[0] for call in model.calls) == total_rows


def test_callers_on_plain_threads_use_the_blocking_call(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=16, num_batch_threads=2)
    model = Model()
    queue = scheduler.queue("k", model)

    def caller(index: int) -> None:
        x = rows(index * 5, 2)
        np.testing.assert_array_equal(queue.call({"x": x}, timeout=WAIT)["y"], x * 2 + 1)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(caller, range(64)))
    assert sum(r.num_tasks for r in records) == 64


def test_timeout_closes_a_partial_batch(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=100, batch_timeout_micros=50_000)
    model = Model()
    queue = scheduler.queue("k", model)

    async def main() -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(queue.submit({"x": rows(i, 1)}) for i in range(3)))

    results = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert [r["y"].tolist() for r in results] == [(rows(i, 1) * 2 + 1).tolist() for i in range(3)]
    assert records == [BatchRecord("k", 3, 3, 3)]  # far below 100: closed by the timeout


def test_zero_timeout_still_merges_what_queued_while_the_thread_was_busy(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=8, batch_timeout_micros=0)
    model = Model(gated=True)
    queue = scheduler.queue("k", model)

    async def main() -> None:
        first = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)  # the thread is busy with a batch of one
        rest = [queue.submit({"x": rows(i, 1)}) for i in range(1, 6)]
        model.gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert [(r.size, r.num_tasks) for r in records] == [(1, 1), (5, 5)]


def test_allowed_batch_sizes_pad_with_the_first_row_and_trim_outputs(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    model = Model(gated=True)
    queue = scheduler.queue("k", model)

    async def main() -> list[dict[str, np.ndarray]]:
        first = queue.submit({"x": rows(100, 1)})
        await wait_entered(model)
        second = queue.submit({"x": rows(0, 2)})
        third = queue.submit({"x": rows(10, 3)})
        model.gate.set()
        return await asyncio.gather(first, second, third)

    first, second, third = asyncio.run(main())
    assert [(r.size, r.padded_size) for r in records] == [(1, 2), (5, 8)]
    merged = model.calls[1]["x"]
    assert merged.shape == (8, 3)
    np.testing.assert_array_equal(merged[:5], np.concatenate([rows(0, 2), rows(10, 3)]))
    np.testing.assert_array_equal(merged[5:], np.repeat(rows(10, 1), 3, axis=0))
    np.testing.assert_array_equal(second["y"], rows(0, 2) * 2 + 1)
    np.testing.assert_array_equal(third["y"], rows(10, 3) * 2 + 1)
    assert first["y"].shape == (1, 3)


def test_variable_length_inputs_are_padded_to_the_longest(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=16, pad_variable_length_inputs=True)
    model = Model(gated=True)
    queue = scheduler.queue("k", model)
    inputs = [rows(0, 1, width=2), rows(10, 2, width=4), rows(20, 1, width=3)]

    async def main() -> list[dict[str, np.ndarray]]:
        warm = queue.submit({"x": rows(50, 1)})
        await wait_entered(model)
        pending = [queue.submit({"x": x}) for x in inputs]
        model.gate.set()
        await warm
        return await asyncio.gather(*pending)

    results = asyncio.run(main())
    assert records[1].num_tasks == 3
    assert model.calls[1]["x"].shape == (4, 4)
    for x, result in zip(inputs, results, strict=True):
        padded = np.full((x.shape[0], 4), x.flat[0], dtype=np.float32)  # TF Serving's pad value
        padded[:, : x.shape[1]] = x
        np.testing.assert_array_equal(result["y"], padded * 2 + 1)


def test_variable_length_string_inputs_are_padded_too(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=16, pad_variable_length_inputs=True)
    gate, entered = threading.Event(), threading.Event()

    def echo(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entered.set()
        gate.wait(WAIT)
        return {"tokens": inputs["tokens"].copy()}

    queue = scheduler.queue("k", echo)
    inputs = [
        np.array([[b"a", b"b"]], dtype=object),
        np.array([[b"c", b"d", b"e"], [b"f", b"g", b"h"]], dtype=object),
    ]

    async def main() -> list[dict[str, np.ndarray]]:
        warm = queue.submit({"tokens": np.array([[b"w"]], dtype=object)})
        assert await asyncio.to_thread(entered.wait, WAIT)
        pending = [queue.submit({"tokens": t}) for t in inputs]
        gate.set()
        await warm
        return await asyncio.gather(*pending)

    first, second = asyncio.run(main())
    assert records[1].num_tasks == 2
    assert first["tokens"].tolist() == [[b"a", b"b", b"a"]]
    assert second["tokens"].tolist() == [[b"c", b"d", b"e"], [b"f", b"g", b"h"]]


def test_without_padding_different_shapes_run_in_separate_batches(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=16)
    model = Model(gated=True)
    queue = scheduler.queue("k", model)
    inputs = [rows(0, 1, width=2), rows(10, 2, width=4), rows(20, 1, width=2)]

    async def main() -> list[dict[str, np.ndarray]]:
        warm = queue.submit({"x": rows(50, 1)})
        await wait_entered(model)
        pending = [queue.submit({"x": x}) for x in inputs]
        model.gate.set()
        await warm
        return await asyncio.gather(*pending)

    results = asyncio.run(main())
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result["y"], x * 2 + 1)
    assert [r.num_tasks for r in records] == [1, 1, 1, 1]


def test_full_queue_answers_unavailable_at_once(make_scheduler) -> None:
    scheduler, _ = make_scheduler(max_batch_size=2, max_enqueued_batches=2)
    model = Model(gated=True)
    queue = scheduler.queue("k", model)

    async def main() -> list[dict[str, np.ndarray]]:
        running = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)
        accepted = [queue.submit({"x": rows(i, 1)}) for i in range(1, 5)]  # two full batches
        with pytest.raises(ServingError) as caught:
            queue.submit({"x": rows(9, 1)})
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.message.startswith(
            "The batch scheduling queue to which this task was submitted is full"
        )
        assert queue.num_enqueued_tasks == 4
        model.gate.set()
        return await asyncio.gather(running, *accepted)

    results = asyncio.run(main())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], rows(i, 1) * 2 + 1)


def test_request_larger_than_max_batch_size_is_invalid_argument(make_scheduler) -> None:
    scheduler, _ = make_scheduler(max_batch_size=4)
    queue = scheduler.queue("k", Model())
    with pytest.raises(ServingError) as caught:
        queue.call({"x": rows(0, 5)})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == "Task size 5 is larger than maximum input batch size 4"


def test_large_batch_splitting_runs_parts_and_reassembles_in_order(make_scheduler) -> None:
    scheduler, records = make_scheduler(
        max_batch_size=10, enable_large_batch_splitting=True, max_execution_batch_size=4
    )
    model = Model()
    queue = scheduler.queue("k", model)
    x = rows(0, 10)
    result = queue.call({"x": x}, timeout=WAIT)
    np.testing.assert_array_equal(result["y"], x * 2 + 1)
    np.testing.assert_array_equal(result["rowsum"], x.sum(axis=1))
    assert result["vocab"].tolist() == VOCAB.tolist()
    assert sorted(r.size for r in records) == [2, 4, 4]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": rows(0, 2), "z": rows(0, 3)}, "must have equal 0th-dimension size"),
        ({"x": np.float32(1.0)}, "must have at least one dimension"),
        ({}, "must have at least one input tensor"),
    ],
)
def test_malformed_requests_are_invalid_argument(make_scheduler, inputs, message) -> None:
    scheduler, _ = make_scheduler()
    queue = scheduler.queue("k", Model())
    with pytest.raises(ServingError) as caught:
        queue.call({k: np.asarray(v) for k, v in inputs.items()})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.message


def test_errors_from_run_reach_every_caller_of_the_batch(make_scheduler) -> None:
    scheduler, records = make_scheduler(max_batch_size=16)
    gate = threading.Event()
    entered = threading.Event()

    def failing(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entered.set()
        gate.wait(WAIT)
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "bad row somewhere")

    queue = scheduler.queue("k", failing)

    async def main() -> list[object]:
        first = queue.submit({"x": rows(0, 1)})
        assert await asyncio.to_thread(entered.wait, WAIT)
        rest = [queue.submit({"x": rows(i, 1)}) for i in range(1, 6)]
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert len(outcomes) == 6
    for outcome in outcomes:
        assert isinstance(outcome, ServingError)
        assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
        assert outcome.message == "bad row somewhere"
    assert [r.num_tasks for r in records] == [1, 5]


def test_a_cancelled_caller_does_not_disturb_the_rest(make_scheduler) -> None:
    scheduler, _ = make_scheduler()
    model = Model(gated=True)
    queue = scheduler.queue("k", model)

    async def main() -> dict[str, np.ndarray]:
        first = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)
        gone = queue.submit({"x": rows(1, 1)})
        kept = queue.submit({"x": rows(2, 1)})
        gone.cancel()
        model.gate.set()
        await first
        return await kept

    np.testing.assert_array_equal(asyncio.run(main())["y"], rows(2, 1) * 2 + 1)


def _busy_queue(make_scheduler):
    """A queue whose one batch thread a gated model will hold (zero batch timeout)."""
    scheduler, records = make_scheduler(max_batch_size=8, batch_timeout_micros=0)
    model = Model(gated=True)
    return records, model, scheduler.queue("k", model)


def test_callers_that_gave_up_while_queued_get_no_rows_in_the_batch(make_scheduler) -> None:
    records, model, queue = _busy_queue(make_scheduler)

    async def main() -> dict[str, np.ndarray]:
        first = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)  # the thread is busy; the next ones queue together
        gone = [queue.submit({"x": rows(i, 1)}) for i in (1, 2)]
        kept = queue.submit({"x": rows(3, 1)})
        two_rows_gone = queue.submit({"x": rows(10, 2)})
        for future in (*gone, two_rows_gone):
            future.cancel()
        model.gate.set()
        await first
        return await kept

    np.testing.assert_array_equal(asyncio.run(main())["y"], rows(3, 1) * 2 + 1)
    assert len(model.calls) == 2
    np.testing.assert_array_equal(model.calls[1]["x"], rows(3, 1))
    assert [(r.size, r.num_tasks) for r in records] == [(1, 1), (1, 1)]


def test_a_batch_whose_callers_all_gave_up_is_not_run(make_scheduler) -> None:
    records, model, queue = _busy_queue(make_scheduler)

    async def main() -> dict[str, np.ndarray]:
        first = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)
        gone = [queue.submit({"x": rows(i, 1)}) for i in (1, 2, 3)]
        for future in gone:
            future.cancel()
        model.gate.set()
        await first
        # One more request after the abandoned batch: it runs alone, so the
        # abandoned one was taken (and skipped) by then.
        return await queue.submit({"x": rows(4, 1)})

    np.testing.assert_array_equal(asyncio.run(main())["y"], rows(4, 1) * 2 + 1)
    assert [c["x"].tolist() for c in model.calls] == [rows(0, 1).tolist(), rows(4, 1).tolist()]
    assert [(r.size, r.num_tasks) for r in records] == [(1, 1), (1, 1)]


def test_close_finishes_queued_work_then_refuses(make_scheduler) -> None:
    scheduler, _ = make_scheduler(num_batch_threads=2)
    model = Model(gated=True)
    queue = scheduler.queue("k", model)

    async def main() -> list[dict[str, np.ndarray]]:
        pending = [queue.submit({"x": rows(i, 1)}) for i in range(5)]
        await wait_entered(model)
        closing = asyncio.create_task(asyncio.to_thread(scheduler.close, WAIT))
        model.gate.set()
        results = await asyncio.gather(*pending)
        await closing
        return results

    results = asyncio.run(main())
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], rows(i, 1) * 2 + 1)
    assert not any(
        t.is_alive() for t in threading.enumerate() if t.name.startswith("batch_threads")
    )
    with pytest.raises(ServingError) as caught:
        queue.call({"x": rows(0, 1)})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ServingError):
        scheduler.queue("other", model)


def test_removed_queue_refuses_and_the_key_gets_a_fresh_queue(make_scheduler) -> None:
    scheduler, _ = make_scheduler()
    old_model, new_model = Model(), Model()
    old = scheduler.queue("k", old_model)
    assert scheduler.queue("k", new_model) is old
    old.call({"x": rows(0, 1)}, timeout=WAIT)
    scheduler.remove("k")
    with pytest.raises(ServingError) as caught:
        old.call({"x": rows(0, 1)})
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    fresh = scheduler.queue("k", new_model)
    assert fresh is not old
    fresh.call({"x": rows(0, 1)}, timeout=WAIT)
    assert (len(old_model.calls), len(new_model.calls)) == (1, 1)


def test_queue_depths_show_requests_pile_up_and_drain(make_scheduler) -> None:
    scheduler = BatchScheduler(BatchingParameters(max_batch_size=8, num_batch_threads=1))
    model = Model(gated=True)
    queue = scheduler.queue("k", model)
    seen: list[list[tuple[str, int]]] = []

    async def main() -> None:
        first = queue.submit({"x": rows(0, 1)})
        await wait_entered(model)  # the worker is inside run(): the next ones wait
        rest = [queue.submit({"x": rows(i, 1)}) for i in range(1, 4)]
        seen.append(scheduler.queue_depths())
        model.gate.set()
        await asyncio.gather(first, *rest)
        seen.append(scheduler.queue_depths())

    try:
        asyncio.run(main())
    finally:
        scheduler.close(WAIT)
    assert seen == [[("k", 3)], [("k", 0)]]


def test_a_real_tensorflow_session_behind_the_batcher(make_scheduler) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(4, 2)).astype(np.float32)
    bias = np.array([0.5, -1.0], dtype=np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, shape=[None, 4], name="x")
        y = tf.add(tf.matmul(x, tf.constant(weights)), tf.constant(bias), name="y")
    session = v1.Session(graph=graph)
    graph.finalize()
    predict = session.make_callable(y, [x])
    scheduler, records = make_scheduler(max_batch_size=64, num_batch_threads=2)
    queue = scheduler.queue(("tf", 1), lambda inputs: {"y": predict(inputs["x"])})

    async def caller(index: int) -> None:
        batch = rows(index * 3, 1 + index % 2, width=4)
        result = await queue.submit({"x": batch})
        np.testing.assert_allclose(result["y"], batch @ weights + bias, rtol=1e-5)

    async def main() -> None:
        await asyncio.gather(*(caller(i) for i in range(100)))

    try:
        asyncio.run(main())
    finally:
        session.close()
    assert sum(r.num_tasks for r in records) == 100
    assert len(records) < 100
