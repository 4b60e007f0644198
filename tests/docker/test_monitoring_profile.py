"""The `monitoring` profile of docker-compose.yml, checked without a Docker engine.

Prometheus must scrape what the stack really serves (service names, ports,
TF Serving's metrics path as its own monitoring config sets it), Grafana must
find Prometheus and its dashboard where compose mounts them, and every metric
a dashboard panel queries must be one our code exports (read from the real
``Metrics`` objects of both tiers) or one TF Serving documents.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from docker_stack_files import (
    COMPOSE_FILE,
    ROOT,
    bind_at,
    compose,
    find_compose,
    flag_values,
    service,
    with_defaults,
)

from graph_service.monitoring import Metrics as GraphMetrics
from graph_service.monitoring import load_monitoring_config

PROFILE = "monitoring"
MONITORING = ("prometheus", "grafana")
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "tierkit.json"
# What TF Serving's own exporter calls the views the dashboard shows (tensorflow/serving
# util/prometheus_exporter; names as its /monitoring/prometheus/metrics prints them).
TF_SERVING_METRICS = {
    ":tensorflow:serving:request_count",
    ":tensorflow:serving:request_latency_bucket",
    ":tensorflow:serving:runtime_latency_bucket",
    ":tensorflow:cc:saved_model:load_attempt_count",
    ":tensorflow:cc:saved_model:load_latency",
}
METRIC_NAME = re.compile(
    r"(?<![A-Za-z0-9_:])(tierkit_[a-z0-9_]+|tfserving_[a-z0-9_]+|:tensorflow:[a-z0-9_:]+)"
)


def _source(mount: dict[str, Any]) -> Path:
    return ROOT / with_defaults(mount["source"])


def _exported(registry: Any) -> set[str]:
    """Sample names a scrape can show, from the metric families a registry holds."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]
    }


def _prometheus() -> dict[str, Any]:
    flags = flag_values(service("prometheus")["command"])
    return yaml.safe_load(_source(bind_at("prometheus", flags["config.file"])).read_text())


def _job(name: str) -> dict[str, Any]:
    (job,) = [j for j in _prometheus()["scrape_configs"] if j["job_name"] == name]
    return job


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_monitoring_services_are_only_in_their_profile() -> None:
    services = compose()["services"]
    for name in MONITORING:
        assert services[name]["profiles"] == [PROFILE]
    assert {n for n, s in services.items() if PROFILE in s.get("profiles", [])} == set(MONITORING)
    for name in MONITORING:
        assert re.fullmatch(r"[a-z/-]+:v?\d+\.\d+\.\d+", service(name)["image"]), "pinned image"
        assert service(name)["healthcheck"]["test"][0] == "CMD"
    # Grafana is the one port the profile adds, and only on the loopback interface
    (mapping,) = service("grafana")["ports"]
    assert with_defaults(mapping) == "127.0.0.1:3000:3000"
    assert "ports" not in service("prometheus")
    assert service("grafana")["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_tfserving_serves_prometheus_metrics_from_the_mounted_config() -> None:
    flags = flag_values(service("tfserving")["command"])
    mount = bind_at("tfserving", flags["monitoring_config_file"])
    assert mount["read_only"] is True
    settings = load_monitoring_config(_source(mount))  # graph_service's parser, TF Serving's format
    assert settings.enabled
    job = _job("tfserving")
    assert job["metrics_path"] == settings.path
    (target,) = job["static_configs"][0]["targets"]
    assert target == f"tfserving:{flags['rest_api_port']}"
    assert flags["rest_api_port"] in service("tfserving")["expose"]


def test_prometheus_finds_every_logic_replica_on_its_port() -> None:
    job = _job("logic")
    assert job["metrics_path"] == "/metrics"
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["logic"] and discovery["type"] == "A"
    port = with_defaults(str(service("logic")["environment"]["TIERKIT_PORT"]))
    assert str(discovery["port"]) == port and port in service("logic")["expose"]
    # on the networks of both tiers: TF Serving's is internal and nginx's does not reach it
    assert set(service("prometheus")["networks"]) == {"graph", "edge"}
    assert set(service("tfserving")["networks"]) <= set(service("prometheus")["networks"])


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    provisioning = bind_at("grafana", "/etc/grafana/provisioning")
    assert _source(provisioning) == GRAFANA_DIR / "provisioning"
    (datasource,) = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    url = urlsplit(datasource["url"])
    listen = flag_values(service("prometheus")["command"])["web.listen-address"]
    assert (url.hostname, str(url.port)) == ("prometheus", listen.rpartition(":")[2])
    (provider,) = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "tierkit.yml").read_text()
    )["providers"]
    dashboards = bind_at("grafana", provider["options"]["path"])
    assert _source(dashboards) == DASHBOARD.parent
    home = PurePosixPath(
        service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    assert (DASHBOARD.parent / home.relative_to(provider["options"]["path"])).is_file()
    for panel in _panels():
        if panel["type"] == "text":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]


def test_every_queried_metric_is_exported_by_our_code_or_tf_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    from logic_service.observability.metrics import Metrics as LogicMetrics

    known = _exported(LogicMetrics().registry) | _exported(GraphMetrics().registry)
    queried = {
        name
        for panel in _panels()
        for target in panel.get("targets", [])
        for name in METRIC_NAME.findall(target["expr"])
    }
    unknown = sorted(queried - known - TF_SERVING_METRICS)
    assert not unknown, f"dashboard queries metrics nobody exports: {unknown}"
    # the views the issue asks for are all there
    for needed in (
        "tierkit_requests_total",
        "tierkit_request_latency_seconds_bucket",
        "tierkit_feature_seconds_bucket",
        "tierkit_graph_call_seconds_bucket",
        "tierkit_rollout_stage",
        "tierkit_shadow_requests_total",
        "tierkit_prediction_log_dropped_total",
        "tfserving_batch_size_bucket",
        "tfserving_batch_queue_depth",
        "tfserving_model_load_total",
        "tfserving_model_load_latency_seconds_bucket",
        ":tensorflow:serving:runtime_latency_bucket",
    ):
        assert needed in queried, f"no panel shows {needed}"
    requests_by = {
        label
        for panel in _panels()
        for target in panel.get("targets", [])
        if "tierkit_requests_total" in target["expr"]
        for label in re.findall(r"by \(([^)]*)\)", target["expr"])
    }
    assert "model, arm" in requests_by and "model, version" in requests_by


def test_compose_accepts_the_monitoring_profile() -> None:
    cli, why = find_compose()
    if cli is None:
        pytest.skip(f"no Docker Compose v2 CLI here: {why}")
    run = cli.run("-f", str(COMPOSE_FILE), "--profile", PROFILE, "config", "--format", "json")
    assert run.returncode == 0, run.stderr
    services = json.loads(run.stdout)["services"]
    assert set(MONITORING) <= set(services)
    (port,) = services["grafana"]["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "3000", 3000)
    default = json.loads(cli.run("-f", str(COMPOSE_FILE), "config", "--format", "json").stdout)
    assert not set(MONITORING) & set(default["services"]), "profile services left out by default"


def test_promtool_accepts_the_config_and_every_panel_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/test installs it): config checked above")
    flags = flag_values(service("prometheus")["command"])
    config = _source(bind_at("prometheus", flags["config.file"]))
    run = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # each panel's PromQL, parsed by Prometheus's own parser as recording rules
    exprs = [t["expr"] for panel in _panels() for t in panel.get("targets", [])]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    run = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(exprs)} rules found" in run.stdout
