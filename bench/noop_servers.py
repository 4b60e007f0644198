"""The protocol ceiling: servers that speak the graph tier's protocols and do nothing.

A ``grpc.aio`` PredictionService built from the official servicer (so requests
are parsed and responses serialized like the real server's) that answers one
constant PredictResponse, and a raw ASGI app on uvicorn that reads the body and
answers one constant JSON document. Both run on one plain ``asyncio.run`` loop
in one spawned process with the server's GIL switch interval and thread
classes -- the way ``graph_service.server`` runs its two front ends -- so
whatever the real server costs above these numbers is its own work, not a
different stack.

For the breakdown of that cost the gRPC no-op can also await one stage of the
real work before answering the same constant: the batcher with a ``run`` that
does nothing (``stage="batcher"``), or the batcher with the model's session
(``stage="session"``). Each step down from the ceiling is then the price of
that stage alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NoopSpec:
    grpc_port: int
    rest_port: int
    response: bytes  # serialized PredictResponse answered to every Predict
    rest_body: bytes  # JSON answered to every REST request
    stage: str = "none"  # "none", "batcher" or "session"
    model_dir: Path | None = None  # for stage="session"
    signature: str = "serving_default"
    input_name: str = ""
    output_name: str = ""
    features: int = 0
    batching_parameters: str = ""  # text proto, for the batcher stages


def _stage(spec: NoopSpec):
    """An async callable doing the requested slice of the real work (or None)."""
    if spec.stage == "none":
        return None
    import numpy as np

    from graph_service.batching.batcher import BatchScheduler
    from graph_service.batching.batching_config import parse_batching_parameters

    params = parse_batching_parameters(spec.batching_parameters)
    scheduler = BatchScheduler(params)
    inputs = {spec.input_name or "x": np.zeros((1, max(spec.features, 1)), np.float32)}
    if spec.stage == "session":
        from graph_service.runtime.servable import Servable
        from graph_service.runtime.session_options import SessionOptions

        servable = Servable.load("bench", 1, spec.model_dir, SessionOptions())
        outputs = (spec.output_name,)

        def run(batch: dict) -> dict:
            return servable.run(spec.signature, batch, outputs)

    else:

        def run(batch: dict) -> dict:
            return batch

    queue = scheduler.queue("noop", run)

    async def work() -> None:
        await queue.submit(inputs)

    return work


async def _serve(spec: NoopSpec, conn) -> None:
    import grpc
    import uvicorn
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    constant = predict_pb2.PredictResponse.FromString(spec.response)
    work = _stage(spec)
    rest_body = spec.rest_body

    class NoopPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            if work is not None:
                await work()
            return constant

    server = grpc.aio.server()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(NoopPrediction(), server)
    server.add_insecure_port(f"127.0.0.1:{spec.grpc_port}")
    await server.start()

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(rest_body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": rest_body})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=spec.rest_port,
        loop="none",
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=60,
    )
    rest = uvicorn.Server(config)
    rest_task = asyncio.create_task(rest.serve())
    while not rest.started:
        await asyncio.sleep(0.02)
    _helpers_as_the_server_runs_them()
    conn.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
    rest.should_exit = True
    await rest_task
    await server.stop(0)


def _helpers_as_the_server_runs_them() -> None:
    """Helper threads batch-class, as graph_service.server does by default.

    Part of the stack: without it grpcio's threads preempt the loop on every
    wake-up, and the ceiling would be that of another stack (measured: the
    no-op gRPC server at concurrency 32 is about 25 % faster with it).
    """
    import threading

    from graph_service.cpu.helper_threads import yield_to_loop
    from graph_service.flags import ServerOptions

    if ServerOptions().batch_class_helper_threads:
        yield_to_loop(threading.get_native_id())


def _main(spec: NoopSpec, conn) -> None:
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from graph_service import server

    sys.setswitchinterval(getattr(server, "GIL_SWITCH_INTERVAL_S", sys.getswitchinterval()))
    asyncio.run(_serve(spec, conn))


class NoopServers:
    """Start/stop the no-op gRPC + REST servers in their own process."""

    def __init__(self, spec: NoopSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_main, args=(spec, child), name="bench-noop", daemon=True
        )
        self._process.start()
        if not self._conn.poll(120) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("no-op servers did not start")

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
