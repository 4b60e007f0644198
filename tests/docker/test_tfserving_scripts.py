"""The graph tier image's scripts, run for real outside Docker.

deploy/tfserving/entrypoint.sh and healthcheck.sh are what make the
tensorflow/serving image serve tierkit's models.config; TF Serving itself
cannot run here, so the entrypoint runs `graph_service`, the project's
drop-in for tensorflow_model_server, with the very flags docker-compose.yml
gives TF Serving, on a real SavedModel in a tmp directory laid out like the
container's /app. The healthcheck then talks HTTP over bash's /dev/tcp to
that server's REST API, as it does inside the image.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker_stack_files import ROOT, TFSERVING_SCRIPTS, service
from google.protobuf import text_format
from support.ports import free_port
from tensorflow_serving.config import model_server_config_pb2

ENTRYPOINT = TFSERVING_SCRIPTS / "entrypoint.sh"
HEALTHCHECK = TFSERVING_SCRIPTS / "healthcheck.sh"
START_TIMEOUT_S = 180.0
RELOAD_TIMEOUT_S = 60.0

ONE_MODEL = """
model_config_list {
  config { name: "ctr" base_path: "serving_models/ctr" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 1 } } }
}
"""
TWO_MODELS = ONE_MODEL.replace(
    "\n}\n",
    '\n  config { name: "ctr_copy" base_path: "serving_models/ctr_copy"'
    ' model_platform: "tensorflow" }\n}\n',
)


def _parse(text: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return config


def _replace_atomically(path: Path, text: str) -> None:
    """How export writes models.config: a temporary file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_scorer(export_dir: Path) -> None:
    """A real TF2 SavedModel: score = sigmoid(sum(x))."""
    import tensorflow as tf

    class Scorer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            return {"score": tf.sigmoid(tf.reduce_sum(x, axis=1))}

    scorer = Scorer()
    tf.saved_model.save(scorer, str(export_dir), signatures={"serving_default": scorer.serve})


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """The entrypoint's config-sync loop shares the session: end the whole group."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # The sync loop may outlive the server by one sleep; make sure it is gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def _start_entrypoint(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Started:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", str(ENTRYPOINT), *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(process, log)


def _healthcheck(state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MODEL_NAME"}
    env["TIERKIT_STATE_DIR"] = str(state_dir)
    return subprocess.run(
        ["bash", str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def _wait_for(predicate, timeout: float, what: str, process: Started | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        if process is not None and process.process.poll() is not None:
            pytest.fail(
                f"{what}: the server exited {process.process.returncode}:\n"
                f"{process.log.read_text()[-3000:]}"
            )
        time.sleep(0.5)
    log = process.log.read_text()[-3000:] if process else ""
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{log}")


@dataclass
class GraphTier:
    app: Path  # laid out like the container's /app
    state: Path
    rest_port: int
    started: Started


@pytest.fixture(scope="module")
def graph_tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphTier]:
    app = tmp_path_factory.mktemp("app")
    _save_scorer(app / "serving_models" / "ctr" / "1")
    shutil.copytree(app / "serving_models" / "ctr", app / "serving_models" / "ctr_copy")
    (app / "config").mkdir()
    (app / "config" / "models.config").write_text(ONE_MODEL)
    launcher = app / "tensorflow_model_server"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m graph_service "$@"\n')
    launcher.chmod(0o755)

    grpc_port, rest_port = free_port(), free_port()
    overrides = {
        "port": str(grpc_port),
        "rest_api_port": str(rest_port),
        "model_config_file": str(app / "config" / "models.config"),
        "model_config_file_poll_wait_seconds": "1",
        # the file compose mounts there (issue #6's monitoring profile scrapes it)
        "monitoring_config_file": str(ROOT / "deploy" / "tfserving" / "monitoring.config"),
    }
    args = []
    for flag in service("tfserving")["command"]:  # the flags compose gives TF Serving
        name, _, value = flag[2:].partition("=")
        args.append(f"--{name}={overrides.get(name, value)}")
    state = app / "state"
    env = os.environ | {
        "TIERKIT_MODEL_SERVER": str(launcher),
        "TIERKIT_STATE_DIR": str(state),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(ROOT),
    }
    started = _start_entrypoint(args, app, env, app / "server.log")
    try:
        _wait_for(
            lambda: _healthcheck(state).returncode == 0,
            START_TIMEOUT_S,
            "graph tier healthy",
            started,
        )
        yield GraphTier(app, state, rest_port, started)
    finally:
        started.stop()


def test_resolved_config_has_absolute_base_paths_and_nothing_else_changed(
    graph_tier: GraphTier,
) -> None:
    original = _parse((graph_tier.app / "config" / "models.config").read_text())
    resolved = _parse((graph_tier.state / "models.config").read_text())
    (model,) = resolved.model_config_list.config
    assert model.base_path == str(graph_tier.app / "serving_models" / "ctr")
    model.base_path = "serving_models/ctr"
    assert resolved == original
    assert (graph_tier.state / "rest_api_port").read_text().strip() == str(graph_tier.rest_port)


def test_healthcheck_passes_when_every_model_is_available(graph_tier: GraphTier) -> None:
    check = _healthcheck(graph_tier.state)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "healthy: ctr"


def test_healthcheck_fails_for_a_model_the_server_does_not_have(
    graph_tier: GraphTier, tmp_path: Path
) -> None:
    (tmp_path / "rest_api_port").write_text(f"{graph_tier.rest_port}\n")
    (tmp_path / "models.config").write_text(ONE_MODEL.replace('"ctr"', '"nope"'))
    check = _healthcheck(tmp_path)
    assert check.returncode == 1
    assert "model nope: HTTP/1.1 404" in check.stderr, check.stderr


def test_healthcheck_fails_when_nothing_answers(tmp_path: Path) -> None:
    (tmp_path / "rest_api_port").write_text(f"{free_port()}\n")
    (tmp_path / "models.config").write_text(ONE_MODEL)
    check = _healthcheck(tmp_path)
    assert check.returncode == 1
    assert "nothing answers on 127.0.0.1:" in check.stderr, check.stderr


def test_healthcheck_needs_the_rest_api(tmp_path: Path) -> None:
    (tmp_path / "rest_api_port").write_text("0\n")
    check = _healthcheck(tmp_path)
    assert check.returncode == 1
    assert "REST API is off" in check.stderr, check.stderr


def test_entrypoint_refuses_an_unreadable_config(tmp_path: Path) -> None:
    env = os.environ | {
        "TIERKIT_STATE_DIR": str(tmp_path / "state"),
        "TIERKIT_MODEL_SERVER": "false",
    }
    run = subprocess.run(
        ["bash", str(ENTRYPOINT), "--model_config_file=absent.config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 2
    assert "cannot read --model_config_file=absent.config" in run.stderr, run.stderr
    assert f"must be readable by uid {os.getuid()}" in run.stderr, run.stderr


def test_entrypoint_keeps_uris_and_absolute_paths_and_passes_flags_through(
    tmp_path: Path,
) -> None:
    (tmp_path / "models.config").write_text(
        "model_config_list {\n"
        '  config { name: "a" base_path: "serving_models/a" model_platform: "tensorflow" }\n'
        '  config { name: "b" base_path: "/models/b" model_platform: "tensorflow" }\n'
        '  config { name: "c" base_path: "gs://bucket/c" model_platform: "tensorflow" }\n'
        "  config { name: 'd' base_path: 'serving_models/d' model_platform: 'tensorflow' }\n"
        "}\n"
    )
    state = tmp_path / "state"
    env = os.environ | {"TIERKIT_STATE_DIR": str(state), "TIERKIT_MODEL_SERVER": "echo"}
    started = _start_entrypoint(
        [
            "--port=9000",
            "--model_config_file",
            "models.config",
            "--rest_api_port",
            "9001",
            "--enable_batching",
        ],
        tmp_path,
        env,
        tmp_path / "out.log",
    )
    try:
        assert started.process.wait(timeout=30) == 0
    finally:
        started.stop()
    resolved = _parse((state / "models.config").read_text())
    assert [m.base_path for m in resolved.model_config_list.config] == [
        f"{tmp_path}/serving_models/a",
        "/models/b",
        "gs://bucket/c",
        f"{tmp_path}/serving_models/d",
    ]
    echoed = started.log.read_text().splitlines()[-1].split()
    assert echoed == [
        "--port=9000",
        "--rest_api_port=9001",
        "--enable_batching",
        f"--model_config_file={state}/models.config",
    ]
    assert (state / "rest_api_port").read_text().strip() == "9001"


def test_config_edits_reach_the_server_through_the_resolved_copy(graph_tier: GraphTier) -> None:
    """Last in this module: it changes the served config."""
    source = graph_tier.app / "config" / "models.config"
    resolved = graph_tier.state / "models.config"
    _replace_atomically(source, TWO_MODELS)

    def copy_has_both() -> bool:
        names = {m.name: m.base_path for m in _parse(resolved.read_text()).model_config_list.config}
        return names.get("ctr_copy") == str(graph_tier.app / "serving_models" / "ctr_copy")

    _wait_for(copy_has_both, 10, "resolved copy updated", graph_tier.started)
    check = _wait_for(
        lambda: (
            (c := _healthcheck(graph_tier.state)).returncode == 0 and "ctr_copy" in c.stdout and c
        ),
        RELOAD_TIMEOUT_S,
        "second model served",
        graph_tier.started,
    )
    assert check.stdout.strip() == "healthy: ctr ctr_copy"

    # An unreadable original (mid-deploy, deleted) keeps the last good copy.
    before = resolved.read_text()
    source.unlink()
    time.sleep(2.5)
    assert resolved.read_text() == before
    assert _healthcheck(graph_tier.state).returncode == 0


def test_the_effective_config_is_served_once_the_logic_tier_wrote_it(tmp_path: Path) -> None:
    """compose: TIERKIT_EFFECTIVE_CONFIG (written by the logic tier) wins once it exists."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "models.config").write_text(ONE_MODEL)
    server = tmp_path / "server"
    server.write_text("#!/bin/sh\nexec sleep 60\n")  # stands still: only the copy matters here
    server.chmod(0o755)
    effective = tmp_path / "graph-config" / "models.config"
    state = tmp_path / "state"
    env = os.environ | {
        "TIERKIT_STATE_DIR": str(state),
        "TIERKIT_MODEL_SERVER": str(server),
        "TIERKIT_EFFECTIVE_CONFIG": str(effective),
    }
    started = _start_entrypoint(
        ["--model_config_file=config/models.config"], tmp_path, env, tmp_path / "out.log"
    )
    try:
        resolved = state / "models.config"
        _wait_for(resolved.exists, 10, "first copy", started)
        (model,) = _parse(resolved.read_text()).model_config_list.config
        assert model.model_version_policy.latest.num_versions == 1  # the user's, until...
        effective.parent.mkdir()
        _replace_atomically(
            effective, ONE_MODEL.replace("latest { num_versions: 1 }", "specific { versions: 1 }")
        )

        def pinned() -> bool:
            (entry,) = _parse(resolved.read_text()).model_config_list.config
            return list(entry.model_version_policy.specific.versions) == [1]

        _wait_for(pinned, 10, "the effective config served", started)
        (entry,) = _parse(resolved.read_text()).model_config_list.config
        assert entry.base_path == f"{tmp_path}/serving_models/ctr"  # still resolved
        assert f"serving the config from {effective}" in started.log.read_text()
    finally:
        started.stop()
