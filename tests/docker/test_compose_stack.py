"""The Docker stack for real: build, start with two logic replicas, call it through nginx.

Runs only where a Docker engine answers (`docker info`) and a Compose v2 CLI is
present; elsewhere every test here skips and says why. The stack serves a
demo model published into a tmp model repository, under its own compose
project name and a free host port, so it never touches a stack the developer
runs; `down -v` removes it again.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from docker_stack_files import COMPOSE_FILE, ROOT, ComposeCli, docker_engine, find_compose

from logic_service.features.ctr import EXAMPLE_REQUEST

pytestmark = pytest.mark.docker

UP_TIMEOUT_S = 1800  # first build downloads base images and TensorFlow
READY_TIMEOUT_S = 180
RELOAD_TIMEOUT_S = 60
REPLICAS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())


@dataclass
class Stack:
    cli: ComposeCli
    env: dict[str, str]
    base_url: str
    models: Path

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.cli.run("-f", str(COMPOSE_FILE), *args, env=self.env, timeout=timeout)


def _publish_demo(workdir: Path) -> None:
    """The demo model, published the way ./scripts/up does, into a tmp repository."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "publish_demo.py"),
            "--repo",
            "serving_models",
            "--config",
            "models.config",
            "--demo-dir",
            "demo",
            "--rows",
            "4000",
            "--quiet",
        ],
        cwd=workdir,
        env=os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    engine, why = docker_engine()
    if not engine:
        pytest.skip(f"no Docker engine answers: {why}")
    cli, why = find_compose()
    if cli is None:
        pytest.skip(f"no Docker Compose v2 CLI: {why}")
    workdir = tmp_path_factory.mktemp("stack")
    _publish_demo(workdir)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERKIT_STACK_")} | {
        "COMPOSE_PROJECT_NAME": f"tierkit-test-{uuid.uuid4().hex[:8]}",
        "TIERKIT_STACK_HTTP_PORT": str(port),
        "TIERKIT_STACK_MODELS_DIR": str(workdir / "serving_models"),
        "TIERKIT_STACK_CONFIG_DIR": str(workdir),
        "TIERKIT_STACK_LOGIC_WORKERS": "1",
    }
    stack = Stack(cli, env, f"http://127.0.0.1:{port}", workdir / "serving_models")
    try:
        up = stack.compose(
            "up",
            "-d",
            "--build",
            "--wait",
            "--wait-timeout",
            str(UP_TIMEOUT_S),
            "--scale",
            f"logic={REPLICAS}",
            timeout=UP_TIMEOUT_S + 60,
        )
        logs = stack.compose("logs", "--no-color", "--tail", "200").stdout
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}\n{logs}"
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", timeout=300)


def _wait_ready(stack: Stack) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        answer = httpx.get(f"{stack.base_url}/readyz", timeout=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(1)


def _predict(stack: Stack, body: object, request_id: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": request_id} if request_id else {}
    return httpx.post(
        f"{stack.base_url}/v1/models/ctr/predict", json=body, headers=headers, timeout=30
    )


def test_ready_through_nginx(stack: Stack) -> None:
    answer = _wait_ready(stack)
    assert answer.status_code == 200, answer.text


def test_demo_request_is_served_by_the_newest_version(stack: Stack) -> None:
    _wait_ready(stack)
    answer = _predict(stack, EXAMPLE_REQUEST, request_id="docker-e2e-1")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-ID"] == "docker-e2e-1"
    body = answer.json()
    assert body["model"] == "ctr" and body["request_id"] == "docker-e2e-1"
    assert body["version"] == _versions(stack.models / "ctr")[-1]
    scores = [v for v in body["prediction"].values() for v in (v if isinstance(v, list) else [v])]
    assert scores and all(isinstance(s, float) and math.isfinite(s) for s in scores), body


def test_bad_input_is_the_logic_tiers_4xx_through_nginx(stack: Stack) -> None:
    record = dict(EXAMPLE_REQUEST)
    del record["userId"]
    answer = _predict(stack, record)
    assert answer.status_code == 422, answer.text
    assert "userId" in answer.json()["error"]["message"]


def test_nginx_balances_across_replicas(stack: Stack) -> None:
    _wait_ready(stack)
    marker = f"balance-{uuid.uuid4().hex[:8]}"
    for n in range(20):
        assert _predict(stack, EXAMPLE_REQUEST, request_id=f"{marker}-{n}").status_code == 200
    lines = stack.compose("logs", "--no-color", "--no-log-prefix", "nginx").stdout.splitlines()
    upstreams = {
        m.group(1)
        for line in lines
        if marker in line
        for m in [re.search(r"upstream=(\S+:8000)", line)]
        if m
    }
    assert len(upstreams) == REPLICAS, f"answered by {upstreams}"


def test_containers_run_as_non_root_and_tfserving_is_not_published(stack: Stack) -> None:
    for name in ("tfserving", "logic"):
        uid = stack.compose("exec", "-T", name, "id", "-u")
        assert uid.returncode == 0 and uid.stdout.strip() not in {"", "0"}, uid.stderr
    ps = stack.compose("ps", "--format", "json", "tfserving")
    assert ps.returncode == 0, ps.stderr
    # Compose prints one JSON object per container (older releases: one array).
    text = ps.stdout.strip()
    entries = (
        json.loads(text) if text.startswith("[") else [json.loads(x) for x in text.splitlines()]
    )
    assert entries, "tfserving is not running"
    assert all(not p.get("PublishedPort") for e in entries for p in e.get("Publishers") or [])


def test_a_new_version_is_served_without_a_restart(stack: Stack) -> None:
    """Last here: it publishes a version into the mounted repository, as an ML engineer does."""
    newest = _versions(stack.models / "ctr")[-1]
    workdir = stack.models.parent
    publish = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "keras",
            "demo/model.h5",
            "--name",
            "ctr",
            "--repo",
            "serving_models",
            "--version",
            str(newest + 1),
            "--features",
            "demo/ctr_features.skops",
            "--quiet",
        ],
        cwd=workdir,
        env=os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert publish.returncode == 0, publish.stderr
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    version = newest
    while version != newest + 1 and time.monotonic() < deadline:
        answer = _predict(stack, EXAMPLE_REQUEST)
        assert answer.status_code == 200, answer.text  # the old version serves meanwhile
        version = answer.json()["version"]
        time.sleep(0.5)
    assert version == newest + 1
