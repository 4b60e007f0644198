"""Starting the graph tier (``python -m graph_service``) for a test, and asking it how it is.

``start_graph_server`` runs the server as a user does, as a subprocess from the
repository root, on free 127.0.0.1 ports with a config file, a monitoring config
and a gRPC Unix socket in ``workdir``; it waits until gRPC answers and the named
models have settled (AVAILABLE, nothing still loading), and stops the process if
it does not get there. ``GraphServer`` is what it returns:

    .grpc_target   "127.0.0.1:<port>"
    .rest_url      "http://127.0.0.1:<port>"
    .repo          Path of the model repository
    .config_path   Path of its ModelServerConfig text file
    .process       the subprocess.Popen
    .socket_path   Path of its gRPC Unix socket
    .log_path      Path of its captured stderr
    .metrics_path  "/monitoring/prometheus/metrics"
    .log_text()    its stderr so far
    .stop()        SIGTERM, then kill after 20 s

``graph_tier`` is for tests that stop, kill and restart the graph tier on the
same ports (e2e, fault tests): it returns a ``GraphTier`` (a ``Process`` on two
free ports) started and waited for until every named model has an AVAILABLE
version, or until a condition of the test's own holds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from graph_service.command import graph_service_command
from support.ports import free_ports
from support.processes import ROOT, Process
from support.waiting import wait_until

METRICS_PATH = "/monitoring/prometheus/metrics"
STARTUP_TIMEOUT_S = 120.0


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
    grpc_port, rest_port = free_ports(2)
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


@dataclass
class GraphTier:
    """``python -m graph_service`` on fixed ports that can be stopped, killed, started again."""

    process: Process
    grpc_port: int
    rest_port: int
    repo: Path
    models: tuple[str, ...] = ()  # start() waits until each has an AVAILABLE version

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def available_versions(self, model: str | None = None) -> list[int]:
        """AVAILABLE versions of ``model`` (default: the first of ``models``), from REST."""
        name = model or self.models[0]
        response = httpx.get(f"{self.rest_url}/v1/models/{name}", timeout=2)
        if response.status_code != 200:
            return []
        return sorted(
            int(s["version"])
            for s in response.json()["model_version_status"]
            if s["state"] == "AVAILABLE"
        )

    def start(self, timeout: float = 120, until: Callable[[], bool] | None = None) -> None:
        """Start the process; wait until ``until`` holds, by default every model serving."""
        self.process.start()

        def up() -> bool:
            if not self.process.alive():
                raise AssertionError(f"graph_service died:\n{self.process.tail()}")
            if until is not None:
                return until()
            return all(self.available_versions(m) for m in self.models)

        what = f"graph_service to serve {self.models}" if until is None else "graph_service"
        wait_until(up, timeout, what)

    def restart(self, timeout: float = 120) -> None:
        """Start again after the process was killed (its Popen is forgotten, not waited for)."""
        self.process.popen = None
        self.start(timeout)

    def stop(self) -> None:
        self.process.stop()


def graph_tier(
    config: Path,
    repo: Path,
    log_path: Path,
    models: Iterable[str],
    *flags: str,
    until: Callable[[GraphTier], bool] | None = None,
    timeout: float = 120,
) -> GraphTier:
    """graph_service over ``config`` on two free ports, started; stopped again if never ready."""
    grpc_port, rest_port = free_ports(2)
    argv = graph_service_command(grpc_port, rest_port, f"--model_config_file={config}", *flags)
    tier = GraphTier(Process(argv, log_path), grpc_port, rest_port, repo, tuple(models))
    try:
        tier.start(timeout, (lambda: until(tier)) if until is not None else None)
    except BaseException:
        tier.stop()
        raise
    return tier
