"""Micro-batching of graph calls: concurrent requests for one version share one call.

A graph call costs far more in protocol work (a gRPC or HTTP round trip, the
request and answer encoded and decoded on both tiers, the graph tier's
dispatch) than the demo model's arithmetic on one more row. So while a call for
a (model, version, signature, inputs) lane is in flight, requests arriving for
the same lane wait; when a call returns, everything that waited leaves together
as one call of up to ``max_rows`` rows, and each caller gets its own rows back.

Nothing waits at low load: a request that finds fewer than ``max_in_flight``
calls in flight for its lane goes out at once, alone. The wait is never longer
than one call in flight, so batching adds no timer and no latency floor, only
merges what is queued anyway (the same rule as TF Serving's batcher with
``batch_timeout_micros: 0``).

Errors reach every caller of the merged call, except an INVALID_ARGUMENT from
the graph tier: one caller's tensors may be at fault, so each caller's rows are
sent again alone and only the guilty ones fail.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from logic_service.graph.client import (
    GraphBadAnswer,
    GraphClient,
    GraphRejected,
    GraphTimeout,
    VersionStatus,
)
from logic_service.manifest import SignatureSpec
from logic_service.settings import GraphBatchingSettings

OnBatch = Callable[[str, int], None]  # (model, rows) of each merged call


@dataclass
class _Waiter:
    inputs: dict[str, np.ndarray]
    rows: int
    deadline: float
    future: asyncio.Future


@dataclass
class _Lane:
    in_flight: int = 0
    waiting: deque[_Waiter] = field(default_factory=deque)


class BatchingGraphClient:
    """A GraphClient that merges concurrent predicts of one lane into one call."""

    def __init__(
        self,
        client: GraphClient,
        options: GraphBatchingSettings,
        on_batch: OnBatch | None = None,
    ) -> None:
        self._client = client
        self._options = options
        self._on_batch = on_batch
        self._lanes: dict[Hashable, _Lane] = {}

    async def predict(
        self,
        model: str,
        version: int,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_names: list[str],
        timeout_s: float,
    ) -> dict[str, np.ndarray]:
        rows = _rows(inputs)
        if rows is None or rows >= self._options.max_rows:
            return await self._client.predict(
                model, version, signature_name, inputs, output_names, timeout_s
            )
        key = (
            model,
            version,
            signature_name,
            tuple(output_names),
            tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items())),
        )
        lane = self._lanes.setdefault(key, _Lane())
        if lane.in_flight < self._options.max_in_flight and not lane.waiting:
            lane.in_flight += 1
            try:
                return await self._client.predict(
                    model, version, signature_name, inputs, output_names, timeout_s
                )
            finally:
                lane.in_flight -= 1
                self._dispatch(key, lane)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(inputs, rows, loop.time() + timeout_s, loop.create_future())
        lane.waiting.append(waiter)
        try:
            # Its own deadline, whatever the merged call it rides in allows.
            return await asyncio.wait_for(waiter.future, timeout_s)
        except TimeoutError:
            raise GraphTimeout(
                f"Predict {model}/{version}: no answer within {timeout_s * 1000:.0f} ms "
                "(waiting for a batched call)"
            ) from None

    def _dispatch(self, key: tuple, lane: _Lane) -> None:
        """Send what waits in ``lane`` (called when one of its calls finished)."""
        while lane.waiting and lane.in_flight < self._options.max_in_flight:
            batch: list[_Waiter] = []
            rows = 0
            while lane.waiting and rows + lane.waiting[0].rows <= self._options.max_rows:
                waiter = lane.waiting.popleft()
                if waiter.future.done():  # its caller went away (cancelled)
                    continue
                batch.append(waiter)
                rows += waiter.rows
            if not batch:
                continue
            lane.in_flight += 1
            task = asyncio.ensure_future(self._run(key, batch, rows))
            task.add_done_callback(lambda _t, key=key, lane=lane: self._finished(key, lane))
        if not lane.waiting and lane.in_flight == 0:
            self._lanes.pop(key, None)

    def _finished(self, key: tuple, lane: _Lane) -> None:
        lane.in_flight -= 1
        self._dispatch(key, lane)

    async def _run(self, key: tuple, batch: list[_Waiter], rows: int) -> None:
        model, version, signature_name, output_names, _ = key
        loop = asyncio.get_running_loop()
        # The longest deadline: each waiter enforces its own (a short one must not
        # cut the call short for the others).
        timeout = max(0.001, max(w.deadline for w in batch) - loop.time())
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {
                name: np.concatenate([w.inputs[name] for w in batch]) for name in batch[0].inputs
            }
        if self._on_batch is not None:
            self._on_batch(model, rows)
        try:
            outputs = await self._client.predict(
                model, version, signature_name, inputs, list(output_names), timeout
            )
        except GraphRejected as exc:
            if len(batch) == 1:
                _fail(batch, exc)
            else:
                await self._run_alone(key, batch)
            return
        except Exception as exc:  # every caller of the merged call gets the graph tier's answer
            _fail(batch, exc)
            return
        _deliver(batch, outputs, rows, model, version)

    async def _run_alone(self, key: tuple, batch: list[_Waiter]) -> None:
        model, version, signature_name, output_names, _ = key
        loop = asyncio.get_running_loop()

        async def one(waiter: _Waiter) -> None:
            try:
                result = await self._client.predict(
                    model,
                    version,
                    signature_name,
                    waiter.inputs,
                    list(output_names),
                    max(0.001, waiter.deadline - loop.time()),
                )
            except Exception as exc:
                _fail([waiter], exc)
            else:
                if not waiter.future.done():
                    waiter.future.set_result(result)

        await asyncio.gather(*(one(w) for w in batch))

    # The rest of GraphClient goes straight through.
    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        return await self._client.model_status(model, timeout_s)

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        return await self._client.resolve_label(model, label, timeout_s)

    async def signature(
        self, model: str, version: int, signature_name: str, timeout_s: float
    ) -> SignatureSpec:
        return await self._client.signature(model, version, signature_name, timeout_s)

    async def close(self) -> None:
        await self._client.close()


def _rows(inputs: dict[str, np.ndarray]) -> int | None:
    """The common batch size of ``inputs``, or None when they cannot be merged."""
    sizes = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    return size if size > 0 else None


def _deliver(
    batch: list[_Waiter], outputs: dict[str, np.ndarray], rows: int, model: str, version: int
) -> None:
    bad = [n for n, a in outputs.items() if a.ndim == 0 or a.shape[0] != rows]
    if bad and len(batch) > 1:
        _fail(
            batch,
            GraphBadAnswer(
                f"{model}/{version}: outputs {bad} have no batch dimension of {rows} rows, "
                "so a merged call cannot be split; set graph.batching.max_rows: 1 for this model"
            ),
        )
        return
    start = 0
    for waiter in batch:
        end = start + waiter.rows
        if not waiter.future.done():
            if len(batch) == 1:
                waiter.future.set_result(outputs)
            else:
                waiter.future.set_result({n: a[start:end] for n, a in outputs.items()})
        start = end


def _fail(batch: list[_Waiter], exc: BaseException) -> None:
    for waiter in batch:
        if not waiter.future.done():
            waiter.future.set_exception(exc)
