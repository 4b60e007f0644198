"""The load generator: a separate process that drives one server for a bounded time.

It must not be what limits the numbers, so it does as little as it can per call:
one uvloop event loop, pre-serialized request bytes, no response parsing (the
orchestrator checks one real answer per server before measuring), gRPC through
one ``grpc.aio`` channel with identity (de)serializers, REST as raw HTTP/1.1 on
keep-alive connections (one per concurrent caller). Its own CPU time is reported
next to the numbers so a saturated client would show.

No TensorFlow here: the process is spawned fresh and stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


@dataclass(frozen=True)
class LoadSpec:
    """One measurement: who to call, with what, how hard and for how long."""

    protocol: str  # "grpc" or "rest"
    host: str
    port: int
    payload: bytes  # serialized PredictRequest, or the JSON body
    concurrency: int
    warmup: float
    duration: float
    rest_path: str = ""


@dataclass
class LoadResult:
    """Latencies (seconds) of the calls that started inside the measured window."""

    latencies: np.ndarray
    starts: np.ndarray  # wall-clock (time.time) start of each measured call
    errors: int
    error_samples: list[str] = field(default_factory=list)
    duration: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def completed(self) -> int:
        return int(self.latencies.size)


class _Recorder:
    def __init__(self, spec: LoadSpec) -> None:
        now = time.perf_counter()
        self.measure_from = now + spec.warmup
        self.stop_at = self.measure_from + spec.duration
        self.offset = time.time() - now  # perf_counter -> wall clock
        self.latencies: list[float] = []
        self.starts: list[float] = []
        self.errors = 0
        self.samples: list[str] = []

    def ok(self, started: float, ended: float) -> None:
        if started >= self.measure_from:
            self.latencies.append(ended - started)
            self.starts.append(started + self.offset)

    def failed(self, started: float, reason: str) -> None:
        if started >= self.measure_from:
            self.errors += 1
            if len(self.samples) < 5:
                self.samples.append(reason)


async def _grpc_load(spec: LoadSpec, rec: _Recorder) -> None:
    import grpc

    async with grpc.aio.insecure_channel(f"{spec.host}:{spec.port}") as channel:
        call = channel.unary_unary(PREDICT_METHOD)  # bytes in, bytes out

        async def worker() -> None:
            payload = spec.payload
            clock = time.perf_counter
            while True:
                started = clock()
                if started >= rec.stop_at:
                    return
                try:
                    await call(payload, timeout=30)
                except grpc.aio.AioRpcError as err:
                    rec.failed(started, f"{err.code().name}: {err.details()}")
                else:
                    rec.ok(started, clock())

        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def _rest_load(spec: LoadSpec, rec: _Recorder) -> None:
    head = (
        f"POST {spec.rest_path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(spec.payload)}\r\n\r\n"
    ).encode()
    request = head + spec.payload

    async def worker() -> None:
        clock = time.perf_counter
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while True:
                started = clock()
                if started >= rec.stop_at:
                    return
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(spec.host, spec.port)
                    writer.write(request)
                    status, keep_alive = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                    rec.failed(started, f"{type(err).__name__}: {err}")
                    writer, reader = _drop(writer), None
                    continue
                if status == 200:
                    rec.ok(started, clock())
                else:
                    rec.failed(started, f"HTTP {status}")
                if not keep_alive:
                    writer, reader = _drop(writer), None
        finally:
            _drop(writer)

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


def _drop(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; return (status, connection stays open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = -1
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length >= 0:
        await reader.readexactly(length)
    else:
        raise ValueError("response without Content-Length or chunked body")
    return status, keep_alive


def run_load(spec: LoadSpec) -> LoadResult:
    """Run one measurement in this process (the generator process calls this)."""
    rec = _Recorder(spec)
    cpu_before = os.times()
    runner = _grpc_load if spec.protocol == "grpc" else _rest_load
    _run(runner(spec, rec))
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return LoadResult(
        latencies=np.asarray(rec.latencies, dtype=np.float64),
        starts=np.asarray(rec.starts, dtype=np.float64),
        errors=rec.errors,
        error_samples=rec.samples,
        duration=spec.duration,
        # CPU over warmup + window, scaled to the window.
        client_cpu_seconds=cpu * spec.duration / (spec.warmup + spec.duration),
    )


def _run(coro) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _serve(conn: Connection) -> None:
    while True:
        spec = conn.recv()
        if spec is None:
            return
        try:
            conn.send(run_load(spec))
        except Exception as err:  # report, keep the generator alive
            conn.send(err)


class LoadGenerator:
    """A spawned client process reused for every measurement of a run."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), name="bench-load", daemon=True)
        self._process.start()
        child.close()

    def run(self, spec: LoadSpec) -> LoadResult:
        self._conn.send(spec)
        if not self._conn.poll(spec.warmup + spec.duration + 120):
            raise TimeoutError("load generator did not report back")
        outcome = self._conn.recv()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
