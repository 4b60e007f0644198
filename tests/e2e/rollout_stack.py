"""A graph tier serving four versions of one model, and a logic tier with the admin API on.

Versions of ``rolled``: 1 and 2 healthy ctr scorers (different weights), 3
fails whenever it runs, 4 takes 0.25 s per call. All four are served
(``specific`` policy) with ``stable`` on 1 and ``canary`` on 2, in a
models.config the blue-green switch edits. The logic tier keeps its rollout
state and prediction log in a SQLite file of the same tmp directory, so a
restart of the process finds them again.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.ctr_versions import publish_version
from support.graph_tier import graph_tier
from support.ports import free_port
from support.processes import Process
from support.waiting import wait_until

from .rollout_versions import publish_misbehaving

NAME = "rolled"
TOKEN = "s3cret-admin-token"
VERSIONS = (1, 2, 3, 4)
PREDICT = f"/v1/models/{NAME}/predict"


@dataclass
class RolloutStack:
    graph: Process
    logic: Process
    url: str
    models_config: Path
    repo: Path

    def admin(self, method: str, action: str = "", body: Any = None) -> httpx.Response:
        path = f"{self.url}/admin/rollouts/{NAME}" + (f"/{action}" if action else "")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, path, json=body, headers=headers, timeout=15)

    def rollout(self) -> dict[str, Any]:
        response = self.admin("GET")
        assert response.status_code == 200, response.text
        return response.json()

    def set(self, spec: dict[str, Any]) -> dict[str, Any]:
        response = self.admin("PUT", body=spec)
        assert response.status_code == 200, response.text
        return response.json()


def build_repo(directory: Path, transformer: Any) -> tuple[Path, Path]:
    repo = directory / "serving_models"
    publish_version(repo, NAME, 1, transformer, seed=1)
    publish_version(repo, NAME, 2, transformer, seed=2)
    publish_misbehaving(repo, NAME, 3, transformer, "failing")
    publish_misbehaving(repo, NAME, 4, transformer, "slow")
    config = directory / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{NAME}" base_path: "{repo / NAME}" '
        'model_platform: "tensorflow" model_version_policy { specific { '
        + " ".join(f"versions: {v}" for v in VERSIONS)
        + ' } } version_labels { key: "stable" value: 1 } '
        'version_labels { key: "canary" value: 2 } } }\n'
    )
    return repo, config


def start_graph(directory: Path, config: Path) -> tuple[Process, int]:
    tier = graph_tier(
        config,
        directory / "serving_models",
        directory / "rollout-graph.log",
        (NAME,),
        "--file_system_poll_wait_seconds=1",
        # as with TF Serving, labels on versions still loading need this at startup
        "--allow_version_labels_for_unavailable_models",
        until=lambda tier: len(tier.available_versions()) == len(VERSIONS),
    )
    return tier.process, tier.grpc_port


def write_logic_config(directory: Path, repo: Path, grpc_port: int) -> tuple[Path, int]:
    port = free_port()
    config = directory / "logic-rollouts.yaml"
    config.write_text(
        f"port: {port}\n"
        f"model_repository: {repo}\n"
        f"models: [{{name: {NAME}}}]\n"
        f"admin_token: {TOKEN}\n"
        "rollout_refresh_s: 0.2\n"
        "status_refresh_s: 0.5\n"
        f"graph: {{protocol: grpc, grpc_address: '127.0.0.1:{grpc_port}', deadline_ms: 5000}}\n"
        f"storage: {{database_url: 'sqlite:///{directory / 'rollouts.db'}', "
        "flush_interval_ms: 50}\n"
        f"log: {{dir: {directory / 'logs-rollouts'}, console: false}}\n"
    )
    return config, port


def start_logic(directory: Path, config: Path, port: int) -> tuple[Process, str]:
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        directory / "logic-rollouts.out",
    )
    process.start()
    url = f"http://127.0.0.1:{port}"

    def serving_all() -> bool:
        if not process.alive():
            raise AssertionError(f"logic_service died:\n{process.tail()}")
        answer = httpx.get(
            f"{url}/admin/rollouts/{NAME}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=2,
        )
        return answer.status_code == 200 and answer.json()["serving"] == list(VERSIONS)

    try:
        wait_until(serving_all, 90, "logic tier to route all versions")
    except BaseException:
        process.stop()
        raise
    return process, url
