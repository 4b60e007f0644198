"""An API migration on the stack as ``./scripts/up`` ships it: ``latest { num_versions: 1 }``.

Before the keeper counted API versions, publishing the first v2 version made the
graph tier unload the only v1 version (the shipped policy keeps one), so every
v1 caller got 503 until someone pinned it back. Here the runner of
``./scripts/up`` starts with the project's own models.config (its base path moved
to this test's repository) and a logic.yaml that announces the coming v2 API;
a client loop calls v1 the whole time:

1. publish the first v2 version: both stay loaded, v1 answers throughout;
2. publish a retrained v1 version while v2 serves: v1 moves to it, still with no
   failed request (the old v1 version stays loaded until the new one serves);
3. retire v1: its version is released, although it is the newest folder;
4. remove the v1 folders: one API is left and the graph tier follows the user's
   models.config again, byte for byte.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.ctr_artifacts import fitted_transformer
from support.ctr_versions import publish_version
from support.waiting import wait_until

from logic_service.features import ctr
from logic_service.pinning.in_use import LAST_SERVABLE

from . import v2_features
from .local_stack_run import LocalStackRun, start_local_stack
from .stack import MODEL
from .test_rollouts_shipped_policy import shipped_models_config

TOKEN = "api-shipped-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
V1_FIRST, V2_FIRST, V1_RETRAINED = 1_820_000_000, 1_820_000_100, 1_820_000_200
RETIRE_WINDOW_S = 2
UNLOAD_WITHIN_S = 30.0


@dataclass
class ClientLoop:
    """Calls one API path with the demo record until stopped; keeps every (status, version)."""

    url: str
    path: str
    body: dict[str, Any]
    answers: list[tuple[int, int | None, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ClientLoop:
        def run() -> None:
            with httpx.Client(timeout=15) as client:
                while not self._stop.is_set():
                    try:
                        answer = client.post(f"{self.url}{self.path}", json=self.body)
                    except httpx.HTTPError as exc:
                        self.answers.append((0, None, repr(exc)))
                        continue
                    version = answer.json().get("version") if answer.status_code == 200 else None
                    self.answers.append((answer.status_code, version, answer.text[:300]))

        self._thread = threading.Thread(target=run, name="v1-client-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def more(self, count: int, timeout: float = 60) -> None:
        mark = len(self.answers)
        wait_until(lambda: len(self.answers) >= mark + count, timeout, f"{count} more answers")

    def failures(self) -> list[tuple[int, int | None, str]]:
        return [a for a in self.answers if a[0] != 200]


@dataclass
class MigrationOnShipped:
    run: LocalStackRun
    repo: Path
    models_config: Path
    transformer: Any

    def graph_available(self) -> list[int]:
        url = f"http://127.0.0.1:{self.run.graph_rest_port}/v1/models/{MODEL}"
        states = httpx.get(url, timeout=5).json()["model_version_status"]
        return sorted(int(s["version"]) for s in states if s["state"] == "AVAILABLE")

    def in_use(self) -> dict[int, list[str]]:
        answer = httpx.get(
            f"{self.run.url}/admin/models/{MODEL}/versions", headers=AUTH, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return {i["version"]: [u["why"] for u in i["uses"]] for i in answer.json()["in_use"]}

    def v2_version(self) -> int | None:
        answer = httpx.post(
            f"{self.run.url}/v2/models/{MODEL}/predict",
            json=v2_features.from_v1(ctr.EXAMPLE_REQUEST),
            timeout=15,
        )
        return answer.json()["version"] if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, transformer: Any
) -> Iterator[MigrationOnShipped]:
    directory = tmp_path_factory.mktemp("api-shipped")
    repo = directory / "serving_models"
    publish_version(repo, MODEL, V1_FIRST, transformer, seed=1, api_version="v1")
    models_config = shipped_models_config(directory / "models.config", repo)
    run = start_local_stack(
        repo,
        directory,
        "api-shipped",
        models_config=models_config,
        # v2 is announced before its first version is published (docs/api_versions.md)
        models=f"[{{name: {MODEL}, api_versions: {{v2: {{}}}}}}]",
        logic_settings=(f"admin_token: {TOKEN}\napi_retire_window_s: {RETIRE_WINDOW_S}\n"),
    )
    try:
        run.wait_for_banner(150)
        yield MigrationOnShipped(run, repo, models_config, transformer)
    finally:
        code, _ = run.interrupt(timeout=60)
    assert code == 0, run.text()


def test_v1_keeps_answering_through_a_migration_and_is_released_once_retired(
    stack: MigrationOnShipped,
) -> None:
    v1_body = {**ctr.EXAMPLE_REQUEST, "userId": 7}
    with ClientLoop(stack.run.url, f"/v1/models/{MODEL}/predict", v1_body) as loop:
        loop.more(20)
        before = stack.in_use()

        # 1. the first v2 version: the shipped policy alone would replace V1_FIRST with it
        publish_version(
            stack.repo,
            MODEL,
            V2_FIRST,
            fitted_transformer(seed=3, derive=v2_features.derive_from_v1),
            seed=3,
            function=v2_features.FUNCTION_PATH,
            derive=v2_features.derive_from_v1,
            schema=v2_features.INPUT_SCHEMA,
            api_version="v2",
        )
        wait_until(lambda: stack.v2_version() == V2_FIRST, 60, "v2 answered by its version")
        loop.more(100)
        assert loop.failures() == [], loop.failures()[:5]
        assert stack.graph_available() == [V1_FIRST, V2_FIRST]
        assert before == {V1_FIRST: ["newest version of api v1", LAST_SERVABLE]}
        assert stack.in_use() == {
            V1_FIRST: ["newest version of api v1"],
            V2_FIRST: ["newest version of api v2", LAST_SERVABLE],
        }
        first = Counter(a[1] for a in loop.answers)

        # 2. a retrained v1 version while v2 serves: v1 moves over, nothing fails
        publish_version(
            stack.repo, MODEL, V1_RETRAINED, stack.transformer, seed=5, api_version="v1"
        )
        wait_until(
            lambda: loop.answers[-1][1] == V1_RETRAINED, 60, "v1 answered by its new version"
        )
        loop.more(100)
        wait_until(
            lambda: stack.graph_available() == [V2_FIRST, V1_RETRAINED],
            UNLOAD_WITHIN_S,
            f"{V1_FIRST} released once {V1_RETRAINED} serves v1",
        )
        assert stack.v2_version() == V2_FIRST
    assert loop.failures() == [], loop.failures()[:5]
    assert set(first) == {V1_FIRST}, first  # no v1 request ever met the v2 version
    print(f"v1 client loop: {len(loop.answers)} answers, {Counter(a[1] for a in loop.answers)}")

    # 3. retire v1 once its traffic stopped: its newest version is released
    time.sleep(RETIRE_WINDOW_S + 0.5)
    retired = httpx.post(
        f"{stack.run.url}/admin/apis/{MODEL}/v1/retire",
        json={"reason": "callers moved to v2"},
        headers=AUTH,
        timeout=30,
    )
    assert retired.status_code == 200, retired.text
    wait_until(
        lambda: stack.graph_available() == [V2_FIRST],
        UNLOAD_WITHIN_S,
        f"v1's version {V1_RETRAINED} released after the retirement",
    )
    # the newest folder is a v1 version, yet the retired API's versions are not selected
    assert stack.in_use() == {V2_FIRST: ["newest version of api v2", LAST_SERVABLE]}
    assert stack.v2_version() == V2_FIRST

    # 4. once the v1 folders are gone, one API is left: only the last servable version is
    # held (issue 29: a newer version the logic tier refuses never unloads it)
    for version in (V1_FIRST, V1_RETRAINED):
        doomed = stack.repo / MODEL / f".tmp-prune-{version}"
        (stack.repo / MODEL / str(version)).rename(doomed)
        shutil.rmtree(doomed)
    wait_until(
        lambda: stack.in_use() == {V2_FIRST: [LAST_SERVABLE]}, 10, "only the last servable held"
    )
    assert stack.graph_available() == [V2_FIRST] and stack.v2_version() == V2_FIRST
