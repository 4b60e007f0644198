"""Both tiers as real processes on free loopback ports, started once per session.

``graph`` runs ``python -m graph_service`` on a tmp model repository holding one
published ctr version; it can be stopped and started again on the same ports.
``logic`` runs ``python -m logic_service serve`` against it, once per protocol
(gRPC, REST): every test using it runs for both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from logic.ctr_artifacts import fitted_transformer

from graph_service.command import graph_service_command

from . import alt_features
from .ctr_versions import publish_guarded_model, publish_tensor_model, publish_version

ROOT = Path(__file__).resolve().parents[2]
MODEL = "ctr"
ALT_MODEL = "ctr_alt"  # same raw schema, its own feature function and transformer
TENSOR_MODEL = "plain"  # no manifest: takes tensors
LABELLED_MODEL = "labelled"  # versions 1 and 2 served, "stable" on 1
SCALAR_MODEL = "scalar"  # answers one value per batch: unusable per record (502)
GUARDED_MODEL = "guarded"  # tensors; a negative value is INVALID_ARGUMENT for the whole run
MODELS = (MODEL, ALT_MODEL, TENSOR_MODEL, LABELLED_MODEL, SCALAR_MODEL, GUARDED_MODEL)
LABELLED_POLICY = (
    "model_version_policy { specific { versions: 1 versions: 2 } } "
    'version_labels { key: "stable" value: 1 }'
)
FIRST_VERSION = 1_700_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Process:
    """A child process whose output goes to a log file we can quote when it dies."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it while it runs
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | self.env,
        )
        log.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.popen = None


@dataclass
class GraphTier:
    process: Process
    grpc_port: int
    rest_port: int
    repo: Path

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def available_versions(self, model: str = MODEL) -> list[int]:
        response = httpx.get(f"{self.rest_url}/v1/models/{model}", timeout=2)
        if response.status_code != 200:
            return []
        return sorted(
            int(s["version"])
            for s in response.json()["model_version_status"]
            if s["state"] == "AVAILABLE"
        )

    def start(self, timeout: float = 120) -> None:
        self.process.start()

        def up() -> bool:
            if not self.process.alive():
                raise AssertionError(f"graph_service died:\n{self.process.tail()}")
            return all(self.available_versions(m) for m in MODELS)

        wait_until(up, timeout, f"graph_service to serve {MODELS}")

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture(scope="session")
def transformer() -> Any:
    return fitted_transformer(seed=1)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def graph(stack_dir: Path, transformer: Any) -> Iterator[GraphTier]:
    repo = stack_dir / "serving_models"
    publish_version(repo, MODEL, FIRST_VERSION, transformer, seed=1)
    alt = fitted_transformer(seed=2, derive=alt_features.derive)
    publish_version(
        repo,
        ALT_MODEL,
        7,
        alt,
        seed=2,
        function=alt_features.FUNCTION_PATH,
        derive=alt_features.derive,
    )
    publish_tensor_model(repo, TENSOR_MODEL, 1)
    publish_tensor_model(repo, LABELLED_MODEL, 1)
    publish_tensor_model(repo, LABELLED_MODEL, 2)
    publish_tensor_model(repo, SCALAR_MODEL, 1, batch_major=False)
    publish_guarded_model(repo, GUARDED_MODEL, 1)
    config = stack_dir / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{m}" base_path: "{repo / m}" model_platform: "tensorflow" '
            f"{LABELLED_POLICY if m == LABELLED_MODEL else ''} }}\n"
            for m in MODELS
        )
        + "}\n"
    )
    grpc_port, rest_port = free_port(), free_port()
    process = Process(
        graph_service_command(
            grpc_port,
            rest_port,
            f"--model_config_file={config}",
            "--file_system_poll_wait_seconds=1",
            # as with TF Serving, labels on versions still loading need this at startup
            "--allow_version_labels_for_unavailable_models",
        ),
        stack_dir / "graph.log",
    )
    tier = GraphTier(process, grpc_port, rest_port, repo)
    tier.start()
    yield tier
    tier.stop()


@dataclass
class LogicTier:
    process: Process
    url: str
    protocol: str
    log_dir: Path

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200


def start_logic(graph: GraphTier, stack_dir: Path, protocol: str, workers: int = 1) -> LogicTier:
    port = free_port()
    name = f"{protocol}-{workers}"
    log_dir = stack_dir / f"logs-{name}"
    config = stack_dir / f"logic-{name}.yaml"
    config.write_text(
        f"port: {port}\n"
        f"workers: {workers}\n"
        f"model_repository: {graph.repo}\n"
        f"models: [{', '.join(f'{{name: {m}}}' for m in MODELS)}]\n"
        "graph:\n"
        f"  protocol: {protocol}\n"
        f"  grpc_address: 127.0.0.1:{graph.grpc_port}\n"
        f"  rest_url: {graph.rest_url}\n"
        f"log:\n  dir: {log_dir}\n"
        f"storage:\n  database_url: sqlite:///{stack_dir / f'tierkit-{name}.db'}\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        stack_dir / f"logic-{name}.out",
        env={"PYTHONPATH": str(ROOT / "tests")},  # for e2e.alt_features
    )
    process.start()
    tier = LogicTier(process, f"http://127.0.0.1:{port}", protocol, log_dir)

    def ready() -> bool:
        if not process.alive():
            raise AssertionError(f"logic_service died:\n{process.tail()}")
        return tier.ready()

    try:
        wait_until(ready, 90, f"logic tier ({name}) /readyz")
    except BaseException:
        process.stop()
        raise
    return tier


@pytest.fixture(scope="session", params=["grpc", "rest"])
def logic(request: pytest.FixtureRequest, graph: GraphTier, stack_dir: Path) -> Iterator[LogicTier]:
    tier = start_logic(graph, stack_dir, request.param)
    yield tier
    tier.process.stop()
