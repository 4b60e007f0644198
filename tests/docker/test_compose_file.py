"""Static checks of docker-compose.yml (no Docker engine needed).

The file is read with PyYAML and checked for what makes the stack work and
safe: only nginx publishes a port, TF Serving sits on an internal network,
the model repository is shared read-only, every service has a healthcheck and
starts after what it needs is healthy, and TF Serving's flags match the
mounts and models.config. Where a Compose v2 CLI is here it must also accept
the file (`config -q`), and its normalized model is checked too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from docker_stack_files import (
    COMPOSE_FILE,
    DOCKERFILES,
    ROOT,
    bind_at,
    binds,
    compose,
    find_compose,
    flag_values,
    last,
    service,
    stages,
    with_defaults,
)
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from logic_service.settings import load_settings

SERVICES = {"tfserving", "logic", "nginx", "postgres"}  # long-running, default profile
JOBS = {"secrets"}  # one-shot (monitoring: its own test)


def _default_services() -> dict[str, Any]:
    return {n: svc for n, svc in compose()["services"].items() if not svc.get("profiles")}


def _tfserving_workdir() -> str:
    (stage,) = stages(DOCKERFILES["tfserving"])
    return last(stage, "WORKDIR").args


def _logic_env() -> dict[str, str]:
    return {k: with_defaults(str(v)) for k, v in service("logic")["environment"].items()}


def test_services_and_how_their_images_are_made() -> None:
    assert set(_default_services()) == SERVICES | JOBS
    for name, dockerfile in (
        ("tfserving", "Dockerfile.tfserving"),
        ("logic", "Dockerfile.logic"),
        ("secrets", "Dockerfile.logic"),
    ):
        build = service(name)["build"]
        # network: host, as an engine without a default bridge has no other build network
        assert build == {"context": ".", "dockerfile": dockerfile, "network": "host"}
        assert (ROOT / build["context"] / dockerfile).is_file()
        assert re.fullmatch(r"tierkit/[a-z]+:\d+\.\d+\.\d+", service(name)["image"])
    assert service("secrets")["image"] == service("logic")["image"]
    for name, pattern in (
        ("nginx", r"nginxinc/nginx-unprivileged:\d+\.\d+\.\d+-alpine"),
        ("postgres", r"postgres:15\.\d+-bookworm"),  # the major the stand-in runs
    ):
        assert re.fullmatch(pattern, service(name)["image"]), f"{name} pinned to a version"


def test_only_nginx_publishes_a_port() -> None:
    published = {name for name, svc in _default_services().items() if svc.get("ports")}
    assert published == {"nginx"}
    (mapping,) = service("nginx")["ports"]
    host, _, container = with_defaults(mapping).rpartition(":")
    assert host == "8000" and container == "8080"
    assert "container_name" not in service("logic"), "a fixed name forbids --scale logic=N"


def test_tfserving_and_postgres_are_on_internal_networks_only() -> None:
    networks = compose()["networks"]
    assert networks["graph"].get("internal") is True
    assert networks["data"].get("internal") is True
    assert not networks["edge"] or not networks["edge"].get("internal")
    assert service("tfserving")["networks"] == ["graph"]
    assert service("postgres")["networks"] == ["data"]
    assert sorted(service("logic")["networks"]) == ["data", "edge", "graph"]
    assert service("nginx")["networks"] == ["edge"], "nginx never reaches the graph tier"
    assert service("secrets")["network_mode"] == "none"


def test_model_repository_is_one_read_only_mount_shared_by_both_tiers() -> None:
    repo = {
        name: bind_at(name, t)
        for name, t in (
            ("tfserving", f"{_tfserving_workdir()}/serving_models"),
            ("logic", _logic_env()["TIERKIT_MODEL_REPOSITORY"]),
        )
    }
    sources = {with_defaults(m["source"]) for m in repo.values()}
    assert sources == {"./serving_models"}
    for name in SERVICES:
        for mount in binds(name):
            assert mount.get("read_only") is True, f"{name}: {mount['target']} is writable"


def test_logs_and_secrets_go_to_named_volumes_where_the_settings_look() -> None:
    volumes = {v["source"]: v for v in service("logic")["volumes"] if v.get("type") == "volume"}
    env = _logic_env()
    assert set(volumes) == {"logic-logs", "stack-secrets", "graph-config", "logic-spill"}
    assert volumes["logic-logs"]["target"] == env["TIERKIT_LOG__DIR"]
    spill = PurePosixPath(env["TIERKIT_STORAGE__SPILL__DIR"])
    assert PurePosixPath(volumes["logic-spill"]["target"]) in spill.parents
    secrets = PurePosixPath(volumes["stack-secrets"]["target"])
    assert volumes["stack-secrets"].get("read_only") is True
    assert PurePosixPath(env["TIERKIT_STORAGE__DATABASE_PASSWORD_FILE"]).parent == secrets
    assert PurePosixPath(env["TIERKIT_ADMIN_TOKEN_FILE"]).parent == secrets
    postgres = service("postgres")
    assert PurePosixPath(postgres["environment"]["POSTGRES_PASSWORD_FILE"]).parent == secrets
    assert {v["source"] for v in postgres["volumes"]} == {"postgres-data", "stack-secrets"}
    assert service("secrets")["command"] == [str(secrets)]
    for name in ("logic-logs", "logic-spill", "postgres-data", "stack-secrets"):
        assert name in compose()["volumes"]


def test_no_secret_value_is_in_the_file() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not re.search(r"(?im)^\s*(POSTGRES_PASSWORD|TIERKIT_ADMIN_TOKEN)\s*:", text)
    url = _logic_env()["TIERKIT_STORAGE__DATABASE_URL"]
    assert url == "postgresql://tierkit@postgres:5432/tierkit", "no password in the URL"


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies() -> None:
    for name in SERVICES:
        check = service(name)["healthcheck"]
        assert check["test"][0] == "CMD" and len(check["test"]) > 1, name
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"
        assert service(name)["restart"] == "unless-stopped"
        assert service(name)["deploy"]["resources"]["limits"]["memory"]
    secrets_done = {"secrets": {"condition": "service_completed_successfully"}}
    assert (
        service("logic")["depends_on"]
        == {
            "tfserving": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
        | secrets_done
    )
    assert service("postgres")["depends_on"] == secrets_done
    assert service("nginx")["depends_on"] == {"logic": {"condition": "service_healthy"}}
    assert service("secrets")["restart"] == "no"
    (stage,) = stages(DOCKERFILES["tfserving"])
    assert service("tfserving")["healthcheck"]["test"][1:] == last(stage, "HEALTHCHECK").exec_form()
    logic_probe = " ".join(service("logic")["healthcheck"]["test"])
    assert f"127.0.0.1:{_logic_env()['TIERKIT_PORT']}/healthz" in logic_probe


def test_the_effective_config_is_written_by_logic_and_read_by_tfserving() -> None:
    """docs/rollouts.md: the logic tier keeps models.config + versions in use in a volume."""
    env = _logic_env()
    effective = PurePosixPath(env["TIERKIT_GRAPH_CONFIG__EFFECTIVE_FILE"])
    volumes = {
        name: {v["source"]: v for v in service(name)["volumes"] if v.get("type") == "volume"}
        for name in ("logic", "tfserving")
    }
    logic_mount, graph_mount = (
        volumes["logic"]["graph-config"],
        volumes["tfserving"]["graph-config"],
    )
    assert logic_mount["target"] == str(effective.parent) and not logic_mount.get("read_only")
    assert graph_mount.get("read_only") is True
    tfserving_env = service("tfserving")["environment"]
    served = PurePosixPath(tfserving_env["TIERKIT_EFFECTIVE_CONFIG"])
    assert served.parent == PurePosixPath(graph_mount["target"]) and served.name == effective.name
    # The user's models.config: the folder TF Serving reads it from, read-only in logic too.
    user = PurePosixPath(env["TIERKIT_GRAPH_CONFIG__MODELS_CONFIG"])
    flags = flag_values(service("tfserving")["command"])
    tfserving_dir = bind_at("tfserving", str(PurePosixPath(flags["model_config_file"]).parent))
    logic_dir = bind_at("logic", str(user.parent))
    assert logic_dir["source"] == tfserving_dir["source"] and logic_dir["read_only"] is True
    assert user.name == PurePosixPath(flags["model_config_file"]).name


def test_tfserving_flags_match_the_mounts_and_polling() -> None:
    flags = flag_values(service("tfserving")["command"])
    config = PurePosixPath(flags["model_config_file"])
    mount = bind_at("tfserving", str(config.parent))
    assert with_defaults(mount["source"]) == "."
    assert (ROOT / with_defaults(mount["source"]) / config.name).is_file()
    assert flags["file_system_poll_wait_seconds"] == "1"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    logic = _logic_env()
    assert logic["TIERKIT_GRAPH__GRPC_ADDRESS"] == f"tfserving:{flags['port']}"
    assert logic["TIERKIT_GRAPH__REST_URL"] == f"http://tfserving:{flags['rest_api_port']}"
    (stage,) = stages(DOCKERFILES["tfserving"])
    image_flags = dict(arg[2:].split("=", 1) for arg in last(stage, "CMD").exec_form())
    compose_only = ("model_config_file", "monitoring_config_file")  # the latter: issue #6
    assert {k: v for k, v in flags.items() if k not in compose_only} == {
        k: v for k, v in image_flags.items() if k not in compose_only
    }


def test_models_config_base_paths_land_in_the_mounted_repository() -> None:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((ROOT / "models.config").read_text(), config)
    models = config.model_config_list.config
    assert models, "models.config lists no model"
    workdir = PurePosixPath(_tfserving_workdir())
    repo_target = workdir / "serving_models"
    for model in models:
        path = PurePosixPath(model.base_path)
        resolved = path if path.is_absolute() else workdir / path
        assert repo_target in resolved.parents, f"{model.name}: {resolved} is outside the mount"


def test_logic_environment_is_valid_logic_tier_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("TIERKIT_"):
            monkeypatch.delenv(name)
    for key, value in _logic_env().items():
        monkeypatch.setenv(key, value)
    # The token file lives in the stack's secrets volume; here, a stand-in file.
    token = tmp_path / "admin_token"
    token.write_text("token-from-the-volume\n")
    monkeypatch.setenv("TIERKIT_ADMIN_TOKEN_FILE", str(token))
    settings = load_settings(ROOT / "logic.yaml")
    assert settings.admin_token.get_secret_value() == "token-from-the-volume"
    assert settings.storage.database_url.startswith("postgresql://")
    assert settings.host == "0.0.0.0"
    assert settings.graph.grpc_address == "tfserving:8500"
    assert settings.graph.protocol == "grpc"
    assert settings.workers == 2
    assert str(settings.metrics_dir).startswith("/tmp/"), "per-container multiprocess metrics"
    assert service("logic")["command"] == ["serve", "--config", "/app/logic.yaml"]
    assert bind_at("logic", "/app/logic.yaml")["source"].endswith("logic.yaml}")


# --- the real Compose CLI, where one is here --------------------------------------------


@pytest.fixture(scope="module")
def compose_cli():
    cli, why = find_compose()
    if cli is None:
        pytest.skip(f"no Docker Compose v2 CLI here: {why}")
    return cli


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TIERKIT_STACK_", "COMPOSE_"))}


def test_compose_accepts_the_file(compose_cli) -> None:
    run = compose_cli.run("-f", str(COMPOSE_FILE), "config", "-q", env=_clean_env())
    assert run.returncode == 0, f"{compose_cli.origin}: {run.stderr}"


def test_compose_rejects_a_broken_copy(compose_cli, tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("depends_on:", "depend_on:", 1))
    run = compose_cli.run("-f", str(broken), "config", "-q", env=_clean_env())
    assert run.returncode != 0 and "depend_on" in run.stderr, run.stderr


def _normalized(compose_cli, env: dict[str, str]) -> dict[str, Any]:
    run = compose_cli.run("-f", str(COMPOSE_FILE), "config", "--format", "json", env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_compose_model_of_the_stack(compose_cli) -> None:
    model = _normalized(compose_cli, _clean_env())
    services = model["services"]
    assert {n for n, s in services.items() if s.get("ports")} == {"nginx"}
    (port,) = services["nginx"]["ports"]
    assert (port["published"], port["target"]) == ("8000", 8080)
    repo = str(ROOT / "serving_models")
    for name in ("tfserving", "logic"):
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        model_mount = next(v for v in mounts.values() if v["source"] == repo)
        assert model_mount["read_only"] is True
    assert model["networks"]["graph"]["internal"] is True


def test_compose_knobs_move_the_published_port_and_model_repository(
    compose_cli, tmp_path: Path
) -> None:
    env = _clean_env() | {
        "TIERKIT_STACK_HTTP_PORT": "18080",
        "TIERKIT_STACK_MODELS_DIR": str(tmp_path),
        "TIERKIT_STACK_LOGIC_WORKERS": "3",
    }
    services = _normalized(compose_cli, env)["services"]
    assert services["nginx"]["ports"][0]["published"] == "18080"
    assert services["logic"]["environment"]["TIERKIT_WORKERS"] == "3"
    for name in ("tfserving", "logic"):
        assert str(tmp_path) in {v["source"] for v in services[name]["volumes"]}
