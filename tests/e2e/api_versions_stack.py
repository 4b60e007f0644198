"""A stack in the middle of an API migration: one graph tier, two logic replicas, one database.

Model ``migrating`` has three versions, all served (``specific`` policy; a
``latest`` graph tier would unload the old API's versions, see
docs/api_versions.md):

- 1: a manifest written before API versions existed (no ``api_version``): API v1,
  the demo's feature function;
- 2: API v1 again (a retrained v1 model), ``api_version: v1`` written out;
- 3: API v2, its own request schema and feature function (``v2_features``),
  labelled ``beta``: the newest version, which v1 callers must never get.

Both logic replicas share one SQLite prediction log, as replicas share
PostgreSQL in production: what one replica logs, the other's retire check sees.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.ctr_artifacts import fitted_transformer
from support.ctr_versions import publish_version
from support.graph_tier import graph_tier
from support.ports import free_port
from support.processes import ROOT, Process
from support.waiting import wait_until

from . import v2_features

NAME = "migrating"
TOKEN = "api-versions-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WINDOW_S = 3  # api_retire_window_s: short, so the test can wait it out
SERVING = {"v1": [1, 2], "v2": [3]}


@dataclass
class Replica:
    process: Process
    url: str

    def apis(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/admin/apis/{NAME}", headers=AUTH, timeout=5)
        assert answer.status_code == 200, answer.text
        return {api["api_version"]: api for api in answer.json()["apis"]}


@dataclass
class MigrationStack:
    graph: Process
    replicas: list[Replica]
    repo: Path
    database: Path

    def stop(self) -> None:
        for replica in self.replicas:
            replica.process.stop()
        self.graph.stop()


def build_repo(directory: Path) -> tuple[Path, Path]:
    repo = directory / "serving_models"
    publish_version(repo, NAME, 1, fitted_transformer(seed=1), seed=1)
    publish_version(repo, NAME, 2, fitted_transformer(seed=2), seed=2, api_version="v1")
    publish_version(
        repo,
        NAME,
        3,
        fitted_transformer(seed=3, derive=v2_features.derive_from_v1),
        seed=3,
        function=v2_features.FUNCTION_PATH,
        derive=v2_features.derive_from_v1,
        schema=v2_features.INPUT_SCHEMA,
        api_version="v2",
    )
    config = directory / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{NAME}" base_path: "{repo / NAME}" '
        'model_platform: "tensorflow" '
        "model_version_policy { specific { versions: 1 versions: 2 versions: 3 } } "
        'version_labels { key: "beta" value: 3 } } }\n'
    )
    return repo, config


def start_graph(directory: Path, config: Path) -> tuple[Process, int]:
    tier = graph_tier(
        config,
        directory / "serving_models",
        directory / "api-graph.log",
        (NAME,),
        "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models",
        until=lambda tier: len(tier.available_versions()) == 3,  # versions 1, 2 and 3
    )
    return tier.process, tier.grpc_port


def start_replica(directory: Path, name: str, grpc_port: int, database: Path) -> Replica:
    port = free_port()
    config = directory / f"logic-{name}.yaml"
    config.write_text(
        f"port: {port}\n"
        f"model_repository: {directory / 'serving_models'}\n"
        "models:\n"
        f"  - name: {NAME}\n"
        "    api_versions:\n"
        "      v1: {deprecated: 2026-12-01, sunset: 2027-06-30, successor: v2}\n"
        f"admin_token: {TOKEN}\n"
        f"api_retire_window_s: {WINDOW_S}\n"
        "rollout_refresh_s: 0.2\n"
        "status_refresh_s: 0.5\n"
        f"graph: {{protocol: grpc, grpc_address: '127.0.0.1:{grpc_port}', deadline_ms: 5000}}\n"
        f"storage: {{database_url: 'sqlite:///{database}', flush_interval_ms: 50}}\n"
        f"log: {{dir: {directory / f'logs-{name}'}, console: false}}\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        directory / f"logic-{name}.out",
        env={"PYTHONPATH": str(ROOT / "tests")},  # for e2e.v2_features
    )
    process.start()
    replica = Replica(process, f"http://127.0.0.1:{port}")

    def serving_both_apis() -> bool:
        if not process.alive():
            raise AssertionError(f"logic_service died:\n{process.tail()}")
        apis = replica.apis()
        return {api: apis.get(api, {}).get("versions") for api in SERVING} == SERVING

    try:
        wait_until(serving_both_apis, 90, f"logic replica {name} to serve APIs {SERVING}")
    except BaseException:
        process.stop()
        raise
    return replica


def start_stack(directory: Path) -> MigrationStack:
    repo, config = build_repo(directory)
    graph, grpc_port = start_graph(directory, config)
    database = directory / "shared.db"
    replicas: list[Replica] = []
    try:
        for name in ("a", "b"):
            replicas.append(start_replica(directory, name, grpc_port, database))
    except BaseException:
        for replica in replicas:
            replica.process.stop()
        graph.stop()
        raise
    return MigrationStack(graph, replicas, repo, database)
