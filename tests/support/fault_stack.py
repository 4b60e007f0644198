"""A small real stack for the fault and fuzz tests: one graph tier, logic tiers started per need.

The graph tier (``python -m graph_service``) serves ``ctr`` (a real SavedModel
with manifest and skops transformer), ``slow`` (busy-waits as long as the
record asks) and ``plain`` (tensor model). It polls its repository and config
file every second so tests can publish, corrupt and delete versions, and it
can be SIGKILLed and restarted on the same ports. Logic tiers are started with
``start_logic_tier(extra_yaml, env)`` so each test picks its own settings
(deadlines, queue size, keys); each gets its own SQLite database in tmp.
The fixtures ``stack`` and ``logic`` are defined here and imported by the
conftest files of ``tests/reliability`` and ``tests/fuzz``, which share them.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from logic_service.features import ctr
from support.ctr_artifacts import fitted_transformer
from support.ctr_versions import publish_tensor_model, publish_version
from support.graph_tier import GraphTier, graph_tier
from support.model_zoo import build_slow
from support.ports import free_port
from support.processes import Process
from support.waiting import wait_until

CTR = "ctr"
SLOW = "slow"
PLAIN = "plain"
MODELS = (CTR, SLOW, PLAIN)
FIRST = 1
PREDICT = "/v1/models/{}/predict"


@dataclass
class Stack:
    graph: GraphTier
    config: Path
    root: Path
    transformer: Any

    def model_dir(self, model: str = CTR) -> Path:
        return self.graph.repo / model


@dataclass
class Logic:
    process: Process
    url: str
    database: Path
    config: Path

    def predict(self, model: str, body: Any, timeout: float = 20, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + PREDICT.format(model), json=body, timeout=timeout, **kw)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of the samples of ``name`` (optionally only lines containing ``labels``)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#") and labels in line:
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] in (name, f"{name}_total"):
                    total += float(value)
        return total

    def start(self) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.alive():
                raise AssertionError(f"logic_service died:\n{self.process.tail()}")
            return self.ready()

        wait_until(ready, 90, "logic tier /readyz")

    def stop(self) -> None:
        self.process.stop()


def graph_config(repo: Path) -> str:
    return (
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{m}" base_path: "{repo / m}" model_platform: "tensorflow" }}\n'
            for m in MODELS
        )
        + "}\n"
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("reliability")
    repo = root / "serving_models"
    transformer = fitted_transformer(seed=1)
    publish_version(repo, CTR, FIRST, transformer, seed=1)
    (repo / SLOW).mkdir(parents=True)
    build_slow(repo / SLOW / "1", "a")
    publish_tensor_model(repo, PLAIN, 1)
    config = root / "models.config"
    config.write_text(graph_config(repo))
    graph = graph_tier(
        config,
        repo,
        root / "graph.log",
        MODELS,
        "--file_system_poll_wait_seconds=1",
        "--model_config_file_poll_wait_seconds=1",
        "--max_num_load_retries=0",
    )
    yield Stack(graph, config, root, transformer)
    graph.stop()


_counter = iter(range(1_000_000))


def start_logic_tier(
    stack: Stack,
    extra_yaml: str = "",
    env: dict[str, str] | None = None,
    protocol: str = "grpc",
    models_yaml: str | None = None,
    name: str | None = None,
) -> Logic:
    """A logic tier on a free port over ``stack`` with its own database (or ``name``'s)."""
    name = name or f"logic-{next(_counter)}"
    port = free_port()
    database = stack.root / f"{name}.db"
    config = stack.root / f"{name}.yaml"
    graph = stack.graph
    models = models_yaml or f"models: [{{name: {CTR}}}, {{name: {SLOW}}}, {{name: {PLAIN}}}]\n"
    config.write_text(
        f"port: {port}\n"
        f"model_repository: {graph.repo}\n" + models + "graph:\n"
        f"  protocol: {protocol}\n"
        f"  grpc_address: 127.0.0.1:{graph.grpc_port}\n"
        f"  rest_url: {graph.rest_url}\n"
        f"log:\n  dir: {stack.root / ('logs-' + name)}\n  console: false\n"
        f"storage:\n  database_url: sqlite:///{database}\n" + extra_yaml
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        stack.root / f"{name}.out",
        env=env or {},
    )
    logic = Logic(process, f"http://127.0.0.1:{port}", database, config)
    try:
        logic.start()
    except BaseException:
        process.stop()
        raise
    return logic


@pytest.fixture(scope="session")
def logic(stack: Stack) -> Iterator[Logic]:
    """Default settings (auth off, no CORS), except a 1 s deadline for the slow model."""
    tier = start_logic_tier(
        stack,
        models_yaml=f"models: [{{name: {CTR}}}, {{name: {SLOW}, deadline_ms: 1000}}, "
        f"{{name: {PLAIN}}}]\n",
        name="default",
    )
    yield tier
    tier.stop()


def copy_version(stack: Stack, source: int, target: int, model: str = CTR) -> Path:
    """A copy of a served version under a new number, renamed into place atomically."""
    staging = stack.model_dir(model) / f".tmp-{target}"
    shutil.copytree(stack.model_dir(model) / str(source), staging)
    manifest = staging / "assets.extra" / "tierkit.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        data["version"] = target
        manifest.write_text(json.dumps(data))
    final = stack.model_dir(model) / str(target)
    staging.rename(final)
    return final


EXAMPLE = ctr.EXAMPLE_REQUEST
