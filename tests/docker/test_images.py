"""The two images on their own, on a real engine (scripts/docker-sandbox).

What the compose stack does not show by itself: the logic image started with
its defaults (a plain `docker run`), a failed start that must not look like a
clean exit to the runtime, and a graph tier image that stays the same when a
model is published.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_sandbox import Engine

# The first test's setup includes the engine's start and, on a fresh machine,
# the stand-in and image builds (minutes, not pytest.ini's 300 s).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
LOGIC_IMAGE = "tierkit/logic:0.1.0"
BUILD_TIMEOUT_S = 900


def _docker(engine: Engine, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def images(engine: Engine) -> Engine:
    """Both images built as compose builds them (cached when the stack test ran first)."""
    build = subprocess.run(
        ["docker", "compose", "build", "logic", "tfserving"],
        cwd=ROOT,
        env=engine.env(COMPOSE_PROJECT_NAME=f"tierkit-images-{uuid.uuid4().hex[:6]}"),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return engine


@pytest.fixture
def container(images: Engine) -> Iterator[list[str]]:
    """Names of containers a test starts; removed afterwards, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        _docker(images, "rm", "-f", name)


def _state(engine: Engine, name: str) -> dict:
    inspected = _docker(engine, "inspect", name)
    assert inspected.returncode == 0, inspected.stderr
    return json.loads(inspected.stdout)[0]["State"]


def test_the_logic_image_alone_starts_with_its_defaults(
    images: Engine, container: list[str]
) -> None:
    """No compose, no settings: the default SQLite database must be creatable as uid 10001
    (it was not: PermissionError on 'var' in root-owned /app, and the tier died)."""
    name = f"tierkit-logic-alone-{uuid.uuid4().hex[:6]}"
    container.append(name)
    run = _docker(images, "run", "-d", "--name", name, "--network", "none", LOGIC_IMAGE)
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + 120
    healthz = None
    while time.monotonic() < deadline:
        state = _state(images, name)
        assert state["Running"], _docker(images, "logs", "--tail", "30", name).stderr
        healthz = _docker(
            images,
            "exec",
            name,
            "python",
            "-c",
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:8000/healthz', timeout=4).status)",
        )
        if healthz.returncode == 0:
            break
        time.sleep(1)
    assert healthz is not None and healthz.stdout.strip() == "200", healthz
    database = _docker(images, "exec", name, "ls", "-l", "/app/var/tierkit.db")
    assert database.returncode == 0 and "tierkit" in database.stdout, database


def test_a_failed_start_with_two_workers_exits_non_zero(
    images: Engine, container: list[str]
) -> None:
    """A runtime restarts or reports by exit code: a failed start must not exit 0."""
    name = f"tierkit-logic-fail-{uuid.uuid4().hex[:6]}"
    container.append(name)
    run = _docker(
        images,
        "run",
        "--name",
        name,
        "--network",
        "none",
        "-e",
        "TIERKIT_WORKERS=2",
        "-e",
        "TIERKIT_STORAGE__DATABASE_URL=sqlite:////proc/no-such-dir/tierkit.db",
        LOGIC_IMAGE,
        timeout=180,
    )
    assert run.returncode not in (0, 125), run.stderr  # 125: docker itself failed
    assert "tierkit.db" in run.stderr or "tierkit.db" in run.stdout, run.stderr[-2000:]


def test_publishing_a_model_does_not_change_the_graph_tier_image(
    images: Engine, tmp_path: Path
) -> None:
    """The image held serving_models/ and models.config: each publish made a new image,
    and the next `up` restarted the graph tier that hot-loads versions anyway."""
    context = tmp_path / "context"
    for item in ("Dockerfile.tfserving", ".dockerignore", "deploy"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, context / item, ignore=shutil.ignore_patterns("standins"))
        else:
            context.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / item)

    tag = f"tierkit-test/tfserving:{uuid.uuid4().hex[:6]}"
    # Built as compose builds it (BuildKit), from a copy of the image's build context.
    (context / "compose.yml").write_text(
        "services:\n  tfserving:\n    image: " + tag + "\n"
        "    build: {context: ., dockerfile: Dockerfile.tfserving, network: host}\n"
    )

    project = f"tierkit-images-{uuid.uuid4().hex[:6]}"  # compose labels images with it

    def build(tag: str) -> str:
        built = subprocess.run(
            ["docker", "compose", "-f", str(context / "compose.yml"), "build", "tfserving"],
            env=images.env(COMPOSE_PROJECT_NAME=project),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        assert built.returncode == 0, built.stderr[-2000:]
        image = _docker(images, "image", "inspect", "--format", "{{.Id}}", tag)
        assert image.returncode == 0, image.stderr
        return image.stdout.strip()

    try:
        before = build(tag)
        version = context / "serving_models" / "ctr" / "1796000000"
        (version / "variables").mkdir(parents=True)
        (version / "saved_model.pb").write_bytes(b"\x08\x01")
        (context / "models.config").write_text('model_config_list { config { name: "ctr" } }\n')
        assert build(tag) == before
    finally:
        _docker(images, "rmi", "-f", tag)
