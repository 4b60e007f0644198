"""The e2e session's stack: its models, and the logic tier started over its graph tier.

``conftest.py`` starts the graph tier once per session (``graph``) over a
model repository holding the models below, and a logic tier per protocol
(``logic``); tests that need a logic tier of their own start one with
``start_logic``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from support.graph_tier import GraphTier
from support.ports import free_port
from support.processes import ROOT, Process
from support.waiting import wait_until

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
