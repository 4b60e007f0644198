"""Start ``python -m graph_service`` for a measurement and know when it is serving.

The server is the real CLI in its own process (as in production), on free
loopback ports, with its log in the run's temporary directory so a failed start
can be explained. Ready means: GetModelStatus reports the awaited versions
AVAILABLE and the REST port accepts connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from graph_service.command import graph_service_command

AVAILABLE = 30  # ModelVersionStatus.State.AVAILABLE


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def version_states(channel: grpc.Channel, model: str) -> dict[int, int]:
    """{version: state} as GetModelStatus reports it ({} while the model is unknown)."""
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    try:
        response = stub.GetModelStatus(request, timeout=5)
    except grpc.RpcError:
        return {}
    return {s.version: s.state for s in response.model_version_status}


class GraphServer:
    """One ``python -m graph_service`` process on 127.0.0.1."""

    def __init__(self, flags: list[str], log_path: Path, model: str, expect_versions=(1,)):
        self.grpc_port = free_port()
        self.rest_port = free_port()
        self.model = model
        self.log_path = log_path
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        command = graph_service_command(self.grpc_port, self.rest_port, *flags)
        self._log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        try:
            self._wait_ready(expect_versions, timeout=180)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, versions, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"graph_service exited early; log:\n{self.log_tail()}")
            states = version_states(self.channel, self.model)
            if all(states.get(v) == AVAILABLE for v in versions) and self._rest_open():
                return
            time.sleep(0.2)
        raise TimeoutError(f"graph_service not ready after {timeout}s; log:\n{self.log_tail()}")

    def _rest_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.rest_port), timeout=1).close()
        except OSError:
            return False
        return True

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
