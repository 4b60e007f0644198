"""Static checks of Dockerfile.logic, Dockerfile.tfserving, their scripts and .dockerignore.

No Docker engine is needed: hadolint and shellcheck (from the dev extra) lint,
and the instructions are read to check what a linter cannot know (the
healthcheck runs the script the image copies, the settings the image sets are
settings the logic tier has).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from docker_stack_files import (
    DOCKERFILES,
    ROOT,
    TFSERVING_SCRIPTS,
    Instruction,
    last,
    sent_to_builder,
    stages,
    venv_tool,
)

from logic_service.settings import LogicSettings, load_settings


def _hadolint(path: Path) -> list[dict]:
    run = subprocess.run(
        [str(venv_tool("hadolint")), "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert run.stdout.strip(), f"hadolint printed nothing (rc={run.returncode}): {run.stderr}"
    return json.loads(run.stdout)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_reports_nothing(image: str) -> None:
    findings = _hadolint(DOCKERFILES[image])
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )


def test_hadolint_is_really_linting(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    codes = {f["code"] for f in _hadolint(bad)}
    assert {"DL3007", "DL3008"} <= codes, codes


def _shellcheck(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_tool("shellcheck")), "--format", "gcc", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_shellcheck_reports_nothing_on_image_scripts() -> None:
    scripts = sorted(TFSERVING_SCRIPTS.glob("*.sh"))
    assert {p.name for p in scripts} == {"entrypoint.sh", "healthcheck.sh"}
    run = _shellcheck(*scripts)
    assert run.returncode == 0, run.stdout + run.stderr


def test_shellcheck_is_really_checking(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/data\n")
    run = _shellcheck(bad)
    assert run.returncode != 0 and "SC2086" in run.stdout, run.stdout


# --- Dockerfile.logic ------------------------------------------------------------


def _env(stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for pair in re.findall(r"(\w+)=(\S+)", ins.args):
                values[pair[0]] = pair[1]
    return values


def _run_lines(stage: list[Instruction]) -> str:
    return "\n".join(i.args for i in stage if i.keyword == "RUN")


def test_logic_image_is_two_stages_on_one_pinned_slim_python() -> None:
    builder, runtime = stages(DOCKERFILES["logic"])
    bases = [s[0].positional() for s in (builder, runtime)]
    assert bases[0][1:] == ["AS", "builder"], bases[0]
    assert bases[0][0] == bases[1][0], "the venv's python symlinks need the same base in both"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", bases[1][0]), bases[1][0]


def test_logic_builder_installs_runtime_dependencies_only_with_uv() -> None:
    builder, _ = stages(DOCKERFILES["logic"])
    run = _run_lines(builder)
    assert re.search(r"pip install --no-cache-dir uv==\d+\.\d+\.\d+", run), "uv must be pinned"
    installs = re.findall(r"uv pip install [^&\n]*", run)
    assert installs, run
    for command in installs:
        assert "[dev]" not in command and " -e " not in command, command
    assert re.search(r"--no-deps (--target \S+ )?\.", run), "the project: non-editable, no deps"
    assert "uv pip compile pyproject.toml" in run, "[tool.uv] overrides apply to the resolution"


def test_logic_runtime_stage_copies_only_the_venv_then_the_project() -> None:
    """The venv (dependencies only) first: after a code change its copy is cached."""
    _, runtime = stages(DOCKERFILES["logic"])
    from_builder = [i for i in runtime if i.keyword == "COPY" and "from" in i.flags()]
    assert [(i.flags()["from"], i.positional()) for i in from_builder] == [
        ("builder", ["/opt/venv", "/opt/venv"]),
        ("builder", ["/opt/project-bin/", "/opt/venv/bin/"]),
        ("builder", ["/opt/project/", "/opt/venv/lib/python3.11/site-packages/"]),
    ]
    builder, _ = stages(DOCKERFILES["logic"])
    installs = re.findall(r"uv pip install [^&\n]*--no-deps[^&\n]*", _run_lines(builder))
    assert installs and all("--target /opt/project" in i for i in installs), installs
    assert not re.search(r"\b(pip|uv) ", _run_lines(runtime)), "no installs in the runtime stage"
    env = _env(runtime)
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert int(env["TF_CPP_MIN_LOG_LEVEL"]) >= 1


def test_logic_runtime_runs_as_non_root_with_healthcheck_on_healthz() -> None:
    _, runtime = stages(DOCKERFILES["logic"])
    user = last(runtime, "USER").args
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"numeric non-root user, got {user!r}"
    assert last(runtime, "EXPOSE").args.split() == ["8000"]
    check = last(runtime, "HEALTHCHECK")
    argv = check.exec_form()
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2], argv
    assert "--interval=" in check.args and "--timeout=" in check.args
    assert last(runtime, "ENTRYPOINT").exec_form() == ["python", "-m", "logic_service"]
    assert last(runtime, "CMD").exec_form() == ["serve", "--config", "/app/logic.yaml"]
    assert last(runtime, "WORKDIR").args == "/app"


def test_logic_image_settings_are_real_logic_tier_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _, runtime = stages(DOCKERFILES["logic"])
    env = {k: v for k, v in _env(runtime).items() if k.startswith("TIERKIT_")}
    assert env, "the image sets TIERKIT_* settings"
    for name in list(os.environ):
        if name.startswith("TIERKIT_"):
            monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings: LogicSettings = load_settings(None)
    assert settings.host == "0.0.0.0"
    assert settings.port == 8000
    assert str(settings.model_repository) == "/app/serving_models"
    assert str(settings.log.dir) == "/app/logs"
    assert settings.metrics_dir is not None and str(settings.metrics_dir).startswith("/tmp/")


# --- Dockerfile.tfserving --------------------------------------------------------


def test_tfserving_image_is_a_pinned_tensorflow_serving_2x() -> None:
    instructions = [i for s in stages(DOCKERFILES["tfserving"]) for i in s]
    text = DOCKERFILES["tfserving"].read_text()
    version = re.search(r"^ARG TF_SERVING_VERSION=(\S+)$", text, re.M)
    assert version and re.fullmatch(r"2\.\d+\.\d+", version.group(1)), "pin a released 2.x tag"
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert froms == ["tensorflow/serving:${TF_SERVING_VERSION}"], froms


def test_tfserving_image_wires_its_scripts_flags_and_workdir() -> None:
    (stage,) = stages(DOCKERFILES["tfserving"])
    copies = {
        Path(i.positional()[0]).name: i.positional()[1]
        for i in stage
        if i.keyword == "COPY" and i.positional()[0].startswith("deploy/")
    }
    assert set(copies) == {"entrypoint.sh", "healthcheck.sh"}
    assert all(
        i.flags().get("chmod") == "0755"
        for i in stage
        if i.keyword == "COPY" and i.positional()[0].startswith("deploy/")
    )
    assert last(stage, "ENTRYPOINT").exec_form() == [copies["entrypoint.sh"]]
    assert last(stage, "HEALTHCHECK").exec_form() == [copies["healthcheck.sh"]]
    workdir = last(stage, "WORKDIR").args
    # Models and models.config are mounted, never baked in: publishing a model
    # must not change the image (nor restart the graph tier on the next `up`).
    copied = [i.positional()[0] for i in stage if i.keyword == "COPY"]
    assert all(src.startswith("deploy/tfserving/") for src in copied), copied
    flags = dict(arg[2:].split("=", 1) for arg in last(stage, "CMD").exec_form())
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    assert flags["model_config_file"] == f"{workdir}/config/models.config"
    assert flags["file_system_poll_wait_seconds"] == "1"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    assert last(stage, "EXPOSE").args.split() == ["8500", "8501"]
    user = last(stage, "USER").args
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"numeric non-root user, got {user!r}"


# --- build context -------------------------------------------------------------


def _context_sources() -> list[str]:
    sources = []
    for path in DOCKERFILES.values():
        for stage in stages(path):
            for ins in stage:
                if ins.keyword == "COPY" and "from" not in ins.flags():
                    sources.extend(ins.positional()[:-1])
    return sources


def test_every_copy_source_exists_and_passes_dockerignore() -> None:
    sources = _context_sources()
    assert "pyproject.toml" in sources and "logic_service/" in sources
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the build context: {missing}"
    blocked = [s for s in sources if not sent_to_builder(s)]
    assert not blocked, f".dockerignore keeps these COPY sources from the builder: {blocked}"


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        (".venv/bin/python", False),
        (".git/HEAD", False),
        ("tests/docker/test_dockerfiles.py", False),
        ("logs/logic.log", False),
        ("logic_service/app.py", True),
        ("logic_service/__pycache__/app.cpython-311.pyc", False),
        ("deploy/tfserving/entrypoint.sh", True),
        ("serving_models/ctr/1795321077/saved_model.pb", False),
        ("models.config", False),
        (".cache/docker-sandbox/data/overlay2/x", False),
    ],
)
def test_dockerignore_sends_only_what_images_need(path: str, sent: bool) -> None:
    assert sent_to_builder(path) is sent


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_no_syntax_directive_so_builds_need_no_registry(image: str) -> None:
    """`# syntax=docker/dockerfile:1` pulls a frontend image from Docker Hub on every
    build: an air-gapped engine fails even with its base images present. What the
    files use (COPY --chmod, multi-stage) the engine's built-in frontend handles."""
    head = DOCKERFILES[image].read_text(encoding="utf-8").lstrip().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", head, re.I), head
