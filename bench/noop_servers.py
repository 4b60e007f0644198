"""The protocol ceiling: servers that speak the graph tier's protocols and do nothing.

A ``grpc.aio`` PredictionService built from the official servicer (so requests
are parsed and responses serialized like the real server's) that answers one
constant PredictResponse, and a raw ASGI app on uvicorn that reads the body and
answers one constant JSON document. Both run on one plain ``asyncio.run`` loop
in one spawned process with the server's GIL switch interval -- the way
``graph_service.server`` runs its two front ends -- so whatever the real server
costs above these numbers is its own work, not a different stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing


async def _serve(grpc_port: int, rest_port: int, response: bytes, rest_body: bytes, conn) -> None:
    import grpc
    import uvicorn
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    constant = predict_pb2.PredictResponse.FromString(response)

    class NoopPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):
            return constant

    server = grpc.aio.server()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(NoopPrediction(), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
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
        port=rest_port,
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
    conn.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
    rest.should_exit = True
    await rest_task
    await server.stop(0)


def _main(grpc_port: int, rest_port: int, response: bytes, rest_body: bytes, conn) -> None:
    import sys

    from graph_service import server

    sys.setswitchinterval(getattr(server, "GIL_SWITCH_INTERVAL_S", sys.getswitchinterval()))
    asyncio.run(_serve(grpc_port, rest_port, response, rest_body, conn))


class NoopServers:
    """Start/stop the no-op gRPC + REST servers in their own process."""

    def __init__(self, grpc_port: int, rest_port: int, response: bytes, rest_body: bytes) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_main,
            args=(grpc_port, rest_port, response, rest_body, child),
            name="bench-noop",
            daemon=True,
        )
        self._process.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("no-op servers did not start")

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
