"""``python -m export versions`` against the stack as ``./scripts/up`` runs it.

The runner of ``./scripts/up`` serves four published ctr versions with the
project's own models.config (``latest { num_versions: 1 }``: only the newest is
loaded until something needs another). The CLI runs as a subprocess, as an
operator runs it on the host, reading the repository from disk and asking the
logic tier's admin API what is loaded and in use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.ctr_versions import publish_version
from support.ports import free_port
from support.processes import ROOT
from support.waiting import wait_until

from logic_service.features import ctr
from logic_service.pinning.in_use import LAST_SERVABLE

from .local_stack_run import LocalStackRun, start_local_stack
from .stack import MODEL
from .test_rollouts_shipped_policy import shipped_models_config

TOKEN = "versions-cli-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
V1, V2, V3, V4 = 1_830_000_001, 1_830_000_002, 1_830_000_003, 1_830_000_004
PARITY = {"samples": 8, "max_abs_diff": 2.98e-08, "atol": 1e-05}


@dataclass
class VersionsStack:
    run: LocalStackRun
    repo: Path
    models_config: Path

    def cli(self, *argv: object, url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TIERKIT_ADMIN_URL": url or self.run.url,
            "TIERKIT_ADMIN_TOKEN": TOKEN,
        }
        return subprocess.run(
            [
                *(sys.executable, "-m", "export", "versions", MODEL),
                *map(str, argv),
                *("--repo", str(self.repo), "--config", str(self.models_config)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=ROOT,
        )

    def json(self, *argv: object) -> dict[str, Any]:
        done = self.cli(*argv, "--json")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return json.loads(done.stdout)

    def admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = httpx.request(
            method, f"{self.run.url}/admin{path}", json=body, headers=AUTH, timeout=120
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def graph_available(self) -> list[int]:
        url = f"http://127.0.0.1:{self.run.graph_rest_port}/v1/models/{MODEL}"
        states = httpx.get(url, timeout=5).json()["model_version_status"]
        return sorted(int(s["version"]) for s in states if s["state"] == "AVAILABLE")

    def answering(self, count: int = 20) -> set[int]:
        with httpx.Client(timeout=15) as client:
            return {
                client.post(
                    f"{self.run.url}/v1/models/{MODEL}/predict",
                    json={**ctr.EXAMPLE_REQUEST, "userId": user},
                ).json()["version"]
                for user in range(count)
            }

    def published(self) -> list[int]:
        return sorted(int(p.name) for p in (self.repo / MODEL).iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[VersionsStack]:
    directory = tmp_path_factory.mktemp("versions-cli")
    repo = directory / "serving_models"
    for version in (V1, V2, V3, V4):
        publish_version(repo, MODEL, version, transformer, seed=version % 100)
    manifest = repo / MODEL / str(V4) / "assets.extra" / "tierkit.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "parity": PARITY}))
    models_config = shipped_models_config(directory / "models.config", repo)
    run = start_local_stack(
        repo,
        directory,
        "versions-cli",
        models_config=models_config,
        logic_settings=f"admin_token: {TOKEN}\n",
    )
    try:
        run.wait_for_banner(150)
        yield VersionsStack(run, repo, models_config)
    finally:
        code, _ = run.interrupt(timeout=60)
    assert code == 0, run.text()


def test_the_list_merges_the_disk_and_the_stack(stack: VersionsStack) -> None:
    stack.admin(
        "PUT", f"/rollouts/{MODEL}", {"strategy": "canary", "baseline": V3, "candidate": V4}
    )
    try:
        listed = stack.json()
        text = stack.cli()
    finally:
        stack.admin("PUT", f"/rollouts/{MODEL}", {"strategy": "stable"})
    rows = {row["version"]: row for row in listed["versions"]}
    assert [row["version"] for row in listed["versions"]] == [V4, V3, V2, V1]  # newest first
    assert listed["stack"] == {"url": stack.run.url, "known": True, "problem": None}
    assert (rows[V4]["state"], rows[V3]["state"], rows[V2]["state"]) == (
        "loaded, ready",
        "loaded, ready",
        "on disk",
    )
    assert rows[V4]["rollout_roles"] == ["canary candidate"]
    assert rows[V3]["rollout_roles"] == ["canary baseline"]
    assert rows[V4]["parity"] == "ok (max abs diff 2.98e-08 <= 1e-05, 8 samples)"
    assert rows[V2]["parity"] == "not checked"  # these test manifests record none
    assert rows[V1]["created"] == "2026-11-22T10:00:00Z" and rows[V1]["api_version"] == "v1"
    assert all(row["size_bytes"] > 1000 for row in rows.values())
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"model {MODEL} in {stack.repo / MODEL} (")
    assert "latest { num_versions: 1 }" in lines[0] and f"stack {stack.run.url}" in lines[0]
    assert lines[1].split() == [
        "VERSION", "STATE", "LABELS", "API", "SIZE", "CREATED", "PARITY", "IN", "USE",
    ]  # fmt: skip
    assert lines[2].startswith(f"  {V4}  loaded, ready")
    assert lines[2].endswith(f"canary candidate; {LAST_SERVABLE}")  # newest ready: held too
    print(text.stdout)


def test_rollback_moves_stable_back_and_keeps_both_loaded(stack: VersionsStack) -> None:
    wait_until(lambda: stack.graph_available() == [V4], 30, f"only {V4} loaded")
    assert stack.answering() == {V4}
    done = stack.json("rollback")
    assert (done["from"], done["to"], done["label"]) == (V4, V3, "stable")
    assert done["pinned"] == [V4] and done["loaded"] == [V3, V4]
    assert 'key: "stable"' in stack.models_config.read_text()
    assert stack.graph_available() == [V3, V4]
    assert stack.answering() == {V3}  # routed by the moved label
    uses = {i["version"]: [u["why"] for u in i["uses"]] for i in stack.admin(
        "GET", f"/models/{MODEL}/versions")["in_use"]}  # fmt: skip
    assert uses == {
        V3: ["label stable", LAST_SERVABLE],  # serves by default: held if a newer one breaks
        V4: [f"pin by operator: versions rollback {V4} -> {V3}"],
    }

    # roll forward again, then leave the stack as it was
    forward = stack.json("rollback", "--to", V4)
    assert (forward["from"], forward["to"]) == (V3, V4)
    assert stack.answering() == {V4}
    for version in (V3, V4):
        httpx.delete(f"{stack.run.url}/admin/models/{MODEL}/pins/{version}", headers=AUTH)
    text = stack.models_config.read_text()
    config_path = stack.models_config
    removed = subprocess.run(
        [sys.executable, "-m", "export", "config", "--name", MODEL, "--config", str(config_path),
         "--remove-label", "stable"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr + text
    wait_until(lambda: stack.graph_available() == [V4], 30, f"only {V4} loaded again")


def test_a_rollback_that_cannot_load_changes_nothing(stack: VersionsStack) -> None:
    broken = stack.repo / MODEL / str(V1 - 1)
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    before = stack.models_config.read_bytes()
    try:
        failed = stack.cli("rollback", "--to", V1 - 1)
    finally:
        import shutil

        shutil.rmtree(broken)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    (line,) = [x for x in failed.stderr.splitlines() if x.startswith("error: ")]
    assert f"version {V1 - 1} of model {MODEL} failed to load" in line
    assert line.endswith("nothing changed") and "Traceback" not in failed.stderr
    assert stack.models_config.read_bytes() == before
    view = stack.admin("GET", f"/models/{MODEL}/versions")
    assert view["pins"] == []
    assert [(i["version"], [u["kind"] for u in i["uses"]]) for i in view["in_use"]] == [
        (V4, ["servable"])  # only the version serving, held as the last servable one
    ]
    assert stack.answering() == {V4}

    unknown = stack.cli("rollback", "--to", V4 + 99)
    assert unknown.returncode == 2
    assert f"error: --to {V4 + 99}: not a published version" in unknown.stderr


def test_prune_never_removes_what_is_in_use(stack: VersionsStack) -> None:
    stack.admin("PUT", f"/models/{MODEL}/pins/{V1}", {"reason": "audit"})
    stack.admin(
        "PUT", f"/rollouts/{MODEL}", {"strategy": "canary", "baseline": V3, "candidate": V4}
    )
    try:
        dry = stack.json("prune", "--keep", 1, "--dry-run")
        assert dry["would_remove"] == [V2] and stack.published() == [V1, V2, V3, V4]
        done = stack.json("prune", "--keep", 1)
        kept = {k["version"]: k["why"] for k in done["kept"]}
        assert done["removed"] == [V2]
        assert stack.published() == [V1, V3, V4]
        assert "in use: pin by operator: audit" in kept[V1]
        assert "in use: canary baseline" in kept[V3] and "loaded" in kept[V3]
        assert "the newest" in kept[V4]
        assert not [p for p in (stack.repo / MODEL).iterdir() if p.name.startswith(".tmp")]
        assert stack.answering() <= {V3, V4}  # serving throughout
    finally:
        stack.admin("PUT", f"/rollouts/{MODEL}", {"strategy": "stable"})
        httpx.delete(f"{stack.run.url}/admin/models/{MODEL}/pins/{V1}", headers=AUTH)


def test_prune_refuses_when_it_cannot_learn_what_is_in_use(stack: VersionsStack) -> None:
    before = stack.published()
    closed = f"http://127.0.0.1:{free_port()}"
    refused = stack.cli("prune", "--keep", 1, url=closed)
    assert refused.returncode == 2
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: prune: cannot learn which versions are in use: ")
    assert closed in line and "Nothing removed" in line and "--stack-down" in line
    assert stack.published() == before


def test_cli_output_into_a_pipe_closed_early_is_quiet(stack: VersionsStack) -> None:
    """``... | head`` exits before the CLI writes: no BrokenPipeError traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TIERKIT_ADMIN_URL": stack.run.url}
    env["TIERKIT_ADMIN_TOKEN"] = TOKEN
    commands = {
        "rollout versions": [sys.executable, "-m", "logic_service", "rollout", "versions", MODEL],
        "export versions": [sys.executable, "-m", "export", "versions", MODEL,
                            "--repo", str(stack.repo), "--config", str(stack.models_config)],
    }  # fmt: skip
    for name, argv in commands.items():
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()  # the reader is gone before the first line is written
        err = child.stderr.read().decode()
        code = child.wait(timeout=120)
        assert "Traceback" not in err and "BrokenPipeError" not in err, f"{name}:\n{err}"
        assert code == 141, f"{name}: exit {code}\n{err}"
