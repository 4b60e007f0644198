"""The Kubernetes tiers run what docker-compose.yml runs, which tests/docker proves on a real
engine: the same images, entrypoints and arguments, TIERKIT_* variable names, ports,
health checks, drain and hardening.

What must agree is compared, not every detail: host names differ by design
(`tfserving` there, the Service `tierkit-graph` here), and so do mounts (bind
mounts there, volumes here; the K8s mounts are checked against the paths the
arguments and variables name). A difference that is on purpose goes into
K8S_ONLY_ENV or ARGS_ONLY_IN with its reason; anything else fails here with both
sides shown, so a change to one stack reaches the other.
"""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import pytest
from k8s_manifests import compose, container, env_of, find, render

OVERLAY = "overlays/production"
GRAPH = ("tfserving", "tierkit-graph", "tfserving")  # compose service, Deployment, container
LOGIC = ("logic", "tierkit-logic", "logic")

# Variables only the Kubernetes logic tier sets, and why (none today: the schema
# mode comes from the ConfigMap's logic.yaml, `storage.migrate_on_start: false`).
K8S_ONLY_ENV: dict[str, str] = {}
# Variables only compose's logic tier sets, and why.
COMPOSE_ONLY_ENV = {
    # The effective models.config the logic tier keeps for the graph tier (versions in
    # use stay loaded) is one file every graph pod reads and one logic pod writes: on
    # Kubernetes that takes a ReadWriteMany volume, not wired yet (docs/kubernetes.md,
    # "Open"); without it the graph tier serves models.config as it is.
    "TIERKIT_GRAPH_CONFIG__MODELS_CONFIG": "the keeper's input, with EFFECTIVE_FILE",
    "TIERKIT_GRAPH_CONFIG__EFFECTIVE_FILE": "needs a ReadWriteMany volume on Kubernetes",
}
# Arguments only one side passes, and why (none today).
ARGS_ONLY_IN: dict[str, str] = {}
# Variables whose values name the other tier's host: compared by port only.
ADDRESS_ENV = {"TIERKIT_GRAPH__GRPC_ADDRESS", "TIERKIT_GRAPH__REST_URL"}
# The database's address is the operator's, from a Secret (compose: its own postgres).
SECRET_ENV = {"TIERKIT_STORAGE__DATABASE_URL"}

_DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")


def _with_defaults(value: Any) -> str:
    return _DEFAULTED.sub(lambda m: m.group(1), str(value))


def _service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def _k8s(names: tuple[str, str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    objects = render(OVERLAY)
    pod = find(objects, "Deployment", names[1])["spec"]["template"]["spec"]
    return pod, container(objects, names[1], names[2])


def _image(reference: str) -> tuple[str, str]:
    name, _, tag = reference.rpartition(":")
    return name, tag


@pytest.mark.parametrize("names", [GRAPH, LOGIC], ids=["graph", "logic"])
def test_same_image(names: tuple[str, str, str]) -> None:
    _, c = _k8s(names)
    assert _image(c["image"]) == _image(_service(names[0])["image"])


@pytest.mark.parametrize("names", [GRAPH, LOGIC], ids=["graph", "logic"])
def test_same_entrypoint_and_arguments(names: tuple[str, str, str]) -> None:
    """Neither overrides the image's ENTRYPOINT; K8s `args` are compose's `command`."""
    service = _service(names[0])
    _, c = _k8s(names)
    assert "entrypoint" not in service and "command" not in c
    theirs = [_with_defaults(a) for a in service["command"]]
    ours = c["args"]
    only_compose = [a for a in theirs if a not in ours and a not in ARGS_ONLY_IN]
    only_k8s = [a for a in ours if a not in theirs and a not in ARGS_ONLY_IN]
    assert not only_compose and not only_k8s, (
        f"{names[0]}: arguments differ; only in docker-compose.yml: {only_compose}, only in "
        f"deploy/k8s: {only_k8s}. Make them equal, or list the difference in ARGS_ONLY_IN "
        "with its reason."
    )
    assert [a for a in ours if a in theirs] == [a for a in theirs if a in ours]  # same order


def test_same_logic_tier_variables() -> None:
    theirs = {k: _with_defaults(v) for k, v in _service("logic")["environment"].items()}
    _, c = _k8s(LOGIC)
    ours = env_of(c)
    missing = sorted(set(theirs) - set(ours) - set(COMPOSE_ONLY_ENV))
    extra = sorted(set(ours) - set(theirs) - set(K8S_ONLY_ENV))
    assert not missing and not extra, (
        f"TIERKIT_* variables differ: set by docker-compose.yml only: {missing}; by deploy/k8s "
        f"only: {extra}. Mirror them in deploy/k8s/base/logic.yaml, or list a K8s-only one in "
        "K8S_ONLY_ENV with its reason."
    )
    for name, value in theirs.items():
        if name in COMPOSE_ONLY_ENV:
            continue
        mine = ours[name]
        if name in SECRET_ENV:
            assert "secretKeyRef" in mine.get("valueFrom", {}), f"{name} must come from a Secret"
        elif name in ADDRESS_ENV:
            port = urlsplit(value if "//" in value else f"//{value}").port
            assert (
                urlsplit(mine["value"] if "//" in mine["value"] else f"//{mine['value']}").port
                == port
            ), name
        elif name == "TIERKIT_WORKERS":
            # Sized per pod (docs/scaling.md); compose's default is 2 as well.
            assert mine["value"] == value == "2"
        else:
            assert mine.get("value") == value, f"{name}: compose {value!r}, k8s {mine}"


def _ports(service: dict[str, Any]) -> set[int]:
    return {int(p) for p in service.get("expose", [])}


@pytest.mark.parametrize("names", [GRAPH, LOGIC], ids=["graph", "logic"])
def test_same_ports(names: tuple[str, str, str]) -> None:
    _, c = _k8s(names)
    assert {p["containerPort"] for p in c["ports"]} == _ports(_service(names[0]))
    objects = render(OVERLAY)
    service = find(objects, "Service", names[1])
    assert {p["port"] for p in service["spec"]["ports"]} == _ports(_service(names[0]))


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", str(text))
    assert match, text
    return int(match.group(1))


def _assert_same_timing(probe: dict[str, Any], check: dict[str, Any], what: str) -> None:
    assert probe["periodSeconds"] == _seconds(check["interval"]), what
    assert probe["timeoutSeconds"] == _seconds(check["timeout"]), what
    assert probe["failureThreshold"] == check["retries"], what


def test_graph_probes_are_the_images_health_check() -> None:
    check = _service("tfserving")["healthcheck"]
    assert check["test"][0] == "CMD"
    _, c = _k8s(GRAPH)
    for kind in ("startupProbe", "readinessProbe"):
        assert c[kind]["exec"]["command"] == check["test"][1:], kind
    _assert_same_timing(c["readinessProbe"], check, "readiness")
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= _seconds(check["start_period"])
    # Liveness: the gRPC port the logic tier uses (not the models' state).
    assert c["livenessProbe"]["tcpSocket"]["port"] in ("grpc", 8500)


def test_logic_liveness_is_the_compose_health_check() -> None:
    check = _service("logic")["healthcheck"]
    url = re.search(r"http://[^'\"]+", " ".join(check["test"]))
    assert url, check["test"]
    target = urlsplit(url.group(0))
    _, c = _k8s(LOGIC)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    live = c["livenessProbe"]["httpGet"]
    assert live["path"] == target.path == "/healthz"
    assert ports.get(live["port"], live["port"]) == target.port
    _assert_same_timing(c["livenessProbe"], check, "liveness")
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= _seconds(check["start_period"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("names", [GRAPH, LOGIC], ids=["graph", "logic"])
def test_same_drain(names: tuple[str, str, str]) -> None:
    """Grace period = the preStop pause (endpoints removed first) + compose's stop_grace_period."""
    pod, c = _k8s(names)
    (pause,) = c["lifecycle"]["preStop"]["exec"]["command"][1:]
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    grace = _seconds(_service(names[0])["stop_grace_period"])
    assert pod["terminationGracePeriodSeconds"] == int(pause) + grace


def test_logic_drain_covers_what_the_tier_does_on_sigterm() -> None:
    """uvicorn's graceful shutdown, then the prediction log's last write, fit the grace."""
    import inspect

    from logic_service import server
    from logic_service.storage.writer.recorder import PredictionRecorder

    graceful = re.search(r'"timeout_graceful_shutdown":\s*(\d+)', inspect.getsource(server))
    assert graceful
    log_stop = inspect.signature(PredictionRecorder.stop).parameters["timeout"].default
    pod, c = _k8s(LOGIC)
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pause + int(graceful.group(1)) + log_stop <= pod["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("names", [GRAPH, LOGIC], ids=["graph", "logic"])
def test_same_hardening(names: tuple[str, str, str]) -> None:
    service = _service(names[0])
    pod, c = _k8s(names)
    security = c["securityContext"]
    assert service["cap_drop"] == ["ALL"] and security["capabilities"]["drop"] == ["ALL"]
    assert service["read_only"] is True and security["readOnlyRootFilesystem"] is True
    assert "no-new-privileges:true" in service["security_opt"]
    assert security["allowPrivilegeEscalation"] is False
    # compose's `init: true` (a reaper as PID 1, signals reach the server)
    assert service["init"] is True and pod["shareProcessNamespace"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the images' USER
    # compose's tmpfs mounts are writable emptyDirs here
    writable = {
        m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly") and "subPath" not in m
    }
    assert set(service.get("tmpfs", [])) <= writable


def test_mounts_cover_what_the_arguments_and_variables_name() -> None:
    """Every path a flag or TIERKIT_* variable names is on a mounted volume of the right kind."""
    _, graph = _k8s(GRAPH)
    graph_mounts = {m["mountPath"]: m for m in graph["volumeMounts"]}
    for arg in graph["args"]:
        _, _, value = arg.partition("=")
        if value.startswith("/"):
            assert any(value.startswith(p + "/") for p in graph_mounts), arg
    assert graph_mounts["/app/serving_models"]["readOnly"] is True
    _, logic = _k8s(LOGIC)
    logic_mounts = {m["mountPath"]: m for m in logic["volumeMounts"]}
    env = env_of(logic)
    assert logic_mounts[env["TIERKIT_MODEL_REPOSITORY"]["value"]]["readOnly"] is True
    assert env["TIERKIT_LOG__DIR"]["value"] in logic_mounts
    assert env["TIERKIT_METRICS_DIR"]["value"].startswith("/tmp/") and "/tmp" in logic_mounts
    for name in ("TIERKIT_STORAGE__DATABASE_PASSWORD_FILE", "TIERKIT_ADMIN_TOKEN_FILE"):
        folder = env[name]["value"].rsplit("/", 1)[0]
        assert logic_mounts[folder]["readOnly"] is True, name
    config = logic["args"][logic["args"].index("--config") + 1]
    assert logic_mounts[config]["subPath"] == "logic.yaml"


def test_migrations_run_with_the_serving_containers_settings() -> None:
    """The init container reads the same logic.yaml and database settings as `serve`."""
    objects = render(OVERLAY)
    migrate = container(objects, "tierkit-logic", "migrate")
    _, logic = _k8s(LOGIC)
    assert migrate["image"] == logic["image"]
    assert migrate["args"][:2] == ["db", "upgrade"]
    assert migrate["args"][2:] == logic["args"][1:]  # --config /app/logic.yaml
    ours, theirs = env_of(migrate), env_of(logic)
    for name in ("TIERKIT_STORAGE__DATABASE_URL", "TIERKIT_STORAGE__DATABASE_PASSWORD_FILE"):
        assert ours[name] == theirs[name], name
    assert shlex.join(migrate["args"]) == "db upgrade --config /app/logic.yaml"


def test_a_divergence_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compose change not mirrored in deploy/k8s fails the checks above, naming it."""
    import copy
    import sys

    changed = copy.deepcopy(compose())
    changed["services"]["tfserving"]["command"].append("--enable_batching=true")
    changed["services"]["logic"]["environment"]["TIERKIT_NEW_SETTING"] = "1"
    changed["services"]["logic"]["stop_grace_period"] = "60s"
    monkeypatch.setattr(sys.modules[__name__], "compose", lambda: changed)
    only_compose = r"only in docker-compose.yml: \[[^]]*'--enable_batching=true'"
    with pytest.raises(AssertionError, match=only_compose):
        test_same_entrypoint_and_arguments(GRAPH)
    only_compose_env = r"docker-compose.yml only: \[[^]]*'TIERKIT_NEW_SETTING'"
    with pytest.raises(AssertionError, match=only_compose_env):
        test_same_logic_tier_variables()
    with pytest.raises(AssertionError):
        test_same_drain(LOGIC)
