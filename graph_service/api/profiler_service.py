"""``tensorflow.ProfilerService`` on the model server's gRPC port, as TF Serving has it.

``tensorflow_model_server`` registers TensorFlow's profiler service on its gRPC
port (``--enable_profiler``, default true), so ``profiler_client.trace(host:port,
logdir, ms)`` or TensorBoard's "capture profile" records what the server does:
TF Serving's own test sends three predicts while tracing.

Here the profiler is TensorFlow's own, in this process: on the first call the
server starts TF's profiler server (``tf.profiler.experimental.server.start``) on
a free port, and every ``tensorflow.ProfilerService`` call on the model port is
passed to it byte for byte, with the caller's deadline. The trace is TF's real
trace of this process (the sessions' and interpreters' ops, host threads), written
by TF's code to the ``logdir`` the caller named, which must be on this machine as
for TF Serving. Nothing listens for the profiler until someone profiles: TF's
server binds every interface of its port (it takes no address), so it is started
only on demand, and never with ``--enable_profiler=false``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import grpc

log = logging.getLogger("graph_service")

SERVICE = "tensorflow.ProfilerService"
METHODS = ("Profile", "Terminate", "Monitor")


def _identity(data: bytes) -> bytes:
    return data


class _ProfilerBackend:
    """TF's profiler server in this process, started on the first call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: str | None = None
        self._channel: grpc.aio.Channel | None = None

    def target(self) -> str:
        with self._lock:
            if self._target is None:
                import tensorflow as tf

                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                tf.profiler.experimental.server.start(port)
                self._target = f"127.0.0.1:{port}"
                log.info("TensorFlow profiler server started for ProfilerService (port %d)", port)
            return self._target

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target())
        return self._channel


class ProfilerForwarder(grpc.GenericRpcHandler):
    """Every ``tensorflow.ProfilerService`` method, passed to TF's profiler server."""

    def __init__(self) -> None:
        self._backend = _ProfilerBackend()
        self._handlers = {
            f"/{SERVICE}/{name}": grpc.unary_unary_rpc_method_handler(
                self._forwarder(name), request_deserializer=_identity,
                response_serializer=_identity,
            )
            for name in METHODS
        }

    def service(self, handler_call_details):
        return self._handlers.get(handler_call_details.method)

    def _forwarder(self, name: str):
        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._backend.target)  # starts TF's server once
            call = self._backend.channel().unary_unary(
                f"/{SERVICE}/{name}", request_serializer=_identity,
                response_deserializer=_identity,
            )
            remaining = context.time_remaining()
            try:
                return await call(request, timeout=remaining)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise  # unreachable: abort raises

        return forward
