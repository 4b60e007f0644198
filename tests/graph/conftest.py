"""Shared fixtures for the graph tier: the model zoo and real servers on loopback.

``graph_server`` (session scope) is ``python -m graph_service`` started as a
subprocess over the zoo, exactly as a user starts it, on free 127.0.0.1 ports,
and waited for until every model has an AVAILABLE version. Its attributes are a
stable API other test modules (REST, batching) rely on:

    graph_server.grpc_target   "127.0.0.1:<port>"
    graph_server.rest_url      "http://127.0.0.1:<port>"
    graph_server.repo          Path of the model repository (zoo.repo)
    graph_server.config_path   Path of its ModelServerConfig text file
    graph_server.process       the subprocess.Popen
    graph_server.socket_path   Path of its gRPC Unix socket
    graph_server.log_path      Path of its captured stderr
    graph_server.metrics_path  "/monitoring/prometheus/metrics"
    graph_server.log_text()    its stderr so far

Tests must not change the shared server's repo or config; ``start_graph_server``
starts a private server (over a private repo) for tests that mutate things.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from model_zoo import Zoo, build_zoo

from graph_service.command import graph_service_command

ROOT = Path(__file__).resolve().parents[2]
METRICS_PATH = "/monitoring/prometheus/metrics"
STARTUP_TIMEOUT_S = 120.0
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    condition: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Poll ``condition`` until it returns a truthy value (returned); fail after ``timeout``.

    Exceptions raised by ``condition`` count as "not yet" and the last one is
    reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # not ready yet
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}{detail}")
        time.sleep(interval)


def graph_env() -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_graph_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``python -m graph_service`` to completion (for CLI error tests)."""
    return subprocess.run(
        [sys.executable, "-m", "graph_service", *args],
        cwd=ROOT,
        env=graph_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class GraphServer:
    grpc_target: str
    rest_url: str
    repo: Path
    config_path: Path
    process: subprocess.Popen
    socket_path: Path
    log_path: Path
    metrics_path: str = METRICS_PATH
    args: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def model_states(grpc_target: str, name: str) -> dict[int, str]:
    """{version: state name} from GetModelStatus (empty when the model is unknown)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
            response = stub.GetModelStatus(request, timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
    return {
        s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
        for s in response.model_version_status
    }


def all_settled(grpc_target: str, names: list[str]) -> bool:
    """Every model has an AVAILABLE version and none is still START/LOADING."""
    for name in names:
        states = model_states(grpc_target, name)
        if "AVAILABLE" not in states.values():
            return False
        if any(s in ("START", "LOADING") for s in states.values()):
            return False
    return True


def start_graph_server(
    workdir: Path,
    repo: Path,
    config_text: str,
    *extra_args: str,
    wait_models: list[str] | None = None,
    config_poll_seconds: int = 1,
) -> GraphServer:
    """Start ``python -m graph_service`` over ``repo`` with ``config_text``; wait until ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "models.config"
    config_path.write_text(config_text)
    monitoring = workdir / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    socket_path = workdir / "grpc.sock"
    log_path = workdir / "server.log"
    grpc_port, rest_port = free_port(), free_port()
    while rest_port == grpc_port:
        rest_port = free_port()
    args = graph_service_command(
        grpc_port,
        rest_port,
        f"--model_config_file={config_path}",
        "--file_system_poll_wait_seconds=1",
        f"--model_config_file_poll_wait_seconds={config_poll_seconds}",
        f"--monitoring_config_file={monitoring}",
        f"--grpc_socket_path={socket_path}",
        "--max_num_load_retries=0",
        "--allow_version_labels_for_unavailable_models",
        *extra_args,
    )
    log_file = log_path.open("w")
    process = subprocess.Popen(
        args, cwd=ROOT, env=graph_env(), stdout=log_file, stderr=subprocess.STDOUT
    )
    log_file.close()
    server = GraphServer(
        grpc_target=f"127.0.0.1:{grpc_port}",
        rest_url=f"http://127.0.0.1:{rest_port}",
        repo=repo,
        config_path=config_path,
        process=process,
        socket_path=socket_path,
        log_path=log_path,
        args=args,
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"graph server exited with {process.returncode}:\n{server.log_text()[-4000:]}"
            )
        model_states(server.grpc_target, "__readiness_probe__")  # raises until gRPC answers
        return all_settled(server.grpc_target, wait_models or [])

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if ready():
                    break
            except RuntimeError:
                raise
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"graph server not ready:\n{server.log_text()[-4000:]}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    return server


def zoo_config(repo: Path) -> str:
    """The shared server's ModelServerConfig (labels on half_plus_two)."""
    return f"""
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{repo / "half_plus_two"}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "tf2_multi"
    base_path: "{repo / "tf2_multi"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "keras_export"
    base_path: "{repo / "keras_export"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "broken"
    base_path: "{repo / "broken"}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
  }}
}}
"""


ZOO_MODELS = ["half_plus_two", "tf2_multi", "keras_export", "broken"]


@pytest.fixture(scope="session")
def model_zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """The built models (session-scoped; never mutate ``zoo.repo`` or ``zoo.originals``)."""
    return build_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def graph_server(model_zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphServer]:
    """The shared graph server over the zoo (read-only for tests)."""
    server = start_graph_server(
        tmp_path_factory.mktemp("graph_server"),
        model_zoo.repo,
        zoo_config(model_zoo.repo),
        wait_models=ZOO_MODELS,
    )
    yield server
    server.stop()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """The ``wait_for(condition, timeout=30, interval=0.1, message=...)`` helper."""
    return wait_for
