"""The systems of ``python -m bench stack``: what processes each one is and where it answers.

A system is built fresh for its measurement in its own directory of the work
directory (logs, model repository copy, databases) on free loopback ports, and
torn down after it. Two-tier systems include their graph tier: it is part of
what the system costs (CPU and memory per process are reported) and of its
cold start. Graph tiers run as ``scripts/local_stack.py`` runs them; the logic
tier gets the repository's ``logic.yaml`` with ``TIERKIT_*`` overrides for the
ports and the work directory, as ``./scripts/up`` does.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack_processes import Child
from bench.stack_repository import DemoModel, model_repository, write_models_config
from graph_service.command import LOCAL_STACK_FLAGS, graph_service_command

REPO = Path(__file__).resolve().parent.parent

ORDER = ("tierkit-grpc", "tierkit-rest", "flask-one-tier", "flask-two-tier", "kserve", "ceiling")
BASELINE = "tierkit-grpc"
# Systems whose score comes from the model; the ceiling answers a constant.
SCORED = ("tierkit-grpc", "tierkit-rest", "flask-one-tier", "flask-two-tier", "kserve")


@dataclass(frozen=True)
class StackOptions:
    logic_workers: int = 1
    flask_workers: int = 2
    flask_predict: str = "predict"  # or predict_on_batch (see bench/peers/flask_one_tier.py)


@dataclass
class SystemSpec:
    name: str
    label: str
    description: str
    children: list[Child]
    port: int
    path: str
    score_path: tuple[Any, ...]  # where the score sits in the answer's JSON
    repository: Path | None = None  # the model's directory its graph tier polls
    version_path: tuple[Any, ...] | None = None  # where the answer names its version
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return (
        os.environ
        | {
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        }
        | extra
    )


def graph_child(
    demo: DemoModel, home: Path, grpc_port: int, rest_port: int, policy: str | None = None
) -> tuple[Child, Path]:
    """``python -m graph_service`` on a fresh repository copy, flags as local_stack.py's."""
    base = model_repository(demo, home)
    config = write_models_config(
        home / "models.config", demo.name, base, policy or "latest { num_versions: 1 }"
    )
    argv = graph_service_command(
        grpc_port, rest_port, f"--model_config_file={config}", *LOCAL_STACK_FLAGS
    )
    return Child("graph tier", argv, home / "graph.log", _env(), home), base


def _tierkit(protocol: str) -> Callable[[DemoModel, Path, StackOptions], SystemSpec]:
    def build(demo: DemoModel, home: Path, options: StackOptions) -> SystemSpec:
        grpc_port, rest_port, port = free_port(), free_port(), free_port()
        graph, base = graph_child(demo, home, grpc_port, rest_port)
        argv = [sys.executable, "-m", "logic_service", "serve", "--port", str(port)]
        argv += ["--workers", str(options.logic_workers), "--protocol", protocol]
        argv += ["--config", str(REPO / "logic.yaml")]
        env = _env(
            TIERKIT_GRAPH__GRPC_ADDRESS=f"127.0.0.1:{grpc_port}",
            TIERKIT_GRAPH__REST_URL=f"http://127.0.0.1:{rest_port}",
            TIERKIT_LOG__CONSOLE="false",
            TIERKIT_LOG__DIR=str(home / "logs"),
            TIERKIT_MODEL_REPOSITORY=str(base.parent),
            TIERKIT_STORAGE__DATABASE_URL=f"sqlite:///{home / 'tierkit.db'}",
        )
        logic = Child("logic tier", argv, home / "logic.stderr.log", env, home)
        wire = "gRPC" if protocol == "grpc" else "REST"
        return SystemSpec(
            name=f"tierkit-{protocol}",
            label=f"tierkit ({wire})",
            description=(
                f"logic tier (`python -m logic_service serve`, {options.logic_workers} worker(s)) "
                f"-> graph tier (`python -m graph_service`) over {wire}"
            ),
            children=[graph, logic],
            port=port,
            path=f"/v1/models/{demo.name}/predict",
            score_path=("prediction", "score"),
            repository=base,
            version_path=("version",),
        )

    return build


def _gunicorn(module: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        f"--workers={workers}",
        f"--bind=127.0.0.1:{port}",
        "--timeout=120",  # TensorFlow and the model load in each worker at import
        f"bench.peers.{module}:app",
    ]


def flask_one_tier(demo: DemoModel, home: Path, options: StackOptions) -> SystemSpec:
    port = free_port()
    env = _env(
        BENCH_MODEL_H5=str(demo.model_h5),
        BENCH_TRANSFORMER=str(demo.transformer),
        BENCH_KERAS_CALL=options.flask_predict,
    )
    argv = _gunicorn("flask_one_tier", port, options.flask_workers)
    return SystemSpec(
        name="flask-one-tier",
        label="Flask recipe, one tier",
        description=(
            f"Flask under gunicorn ({options.flask_workers} sync workers), transformer (skops) "
            "and Keras model (`tf.keras.models.load_model`) in each worker; per request a "
            f"pandas DataFrame, `transform`, `model.{options.flask_predict}`"
            + (
                " (the tutorials' call; its per-call overhead dwarfs one row's compute)"
                if options.flask_predict == "predict"
                else ""
            )
        ),
        children=[Child("gunicorn", argv, home / "gunicorn.log", env, home)],
        port=port,
        path="/predict",
        score_path=("score",),
    )


def flask_two_tier(demo: DemoModel, home: Path, options: StackOptions) -> SystemSpec:
    grpc_port, rest_port, port = free_port(), free_port(), free_port()
    graph, base = graph_child(demo, home, grpc_port, rest_port)
    env = _env(
        BENCH_TRANSFORMER=str(demo.transformer),
        BENCH_PREDICT_URL=f"http://127.0.0.1:{rest_port}/v1/models/{demo.name}:predict",
    )
    argv = _gunicorn("flask_two_tier", port, options.flask_workers)
    return SystemSpec(
        name="flask-two-tier",
        label="Flask recipe, two tiers",
        description=(
            f"the same Flask app ({options.flask_workers} sync workers) calling the graph tier's "
            "REST API (`/v1/models/ctr:predict`, `instances`) with a `requests.Session`"
        ),
        children=[graph, Child("gunicorn", argv, home / "gunicorn.log", env, home)],
        port=port,
        path="/predict",
        score_path=("score",),
        repository=base,
    )


def kserve(demo: DemoModel, home: Path, options: StackOptions) -> SystemSpec:
    grpc_port, rest_port, port = free_port(), free_port(), free_port()
    graph, base = graph_child(demo, home, grpc_port, rest_port)
    argv = [
        sys.executable,
        "-m",
        "bench.peers.kserve_transformer",
        f"--model_name={demo.name}",
        f"--http_port={port}",
        "--enable_grpc=false",  # nothing calls it, and it would bind [::]
        f"--predictor_host=127.0.0.1:{rest_port}",
        f"--transformer={demo.transformer}",
    ]
    return SystemSpec(
        name="kserve",
        label="KServe transformer",
        description=(
            "`kserve.Model` subclass (`preprocess`: the same features) under KServe's "
            "`ModelServer` (defaults: 1 worker, latency log line per request; its gRPC server "
            "off), predictor = the graph tier's REST API (v1 protocol)"
        ),
        children=[graph, Child("kserve", argv, home / "kserve.log", _env(), home)],
        port=port,
        path=f"/v1/models/{demo.name}:predict",
        score_path=("predictions", 0, "score"),
        repository=base,
    )


def ceiling(demo: DemoModel, home: Path, options: StackOptions) -> SystemSpec:
    port = free_port()
    argv = [sys.executable, "-m", "bench.peers.ceiling", f"--port={port}"]
    argv.append(f"--workers={options.logic_workers}")
    return SystemSpec(
        name="ceiling",
        label="Ceiling (FastAPI constant)",
        description=(
            f"FastAPI on uvicorn (uvloop, httptools, {options.logic_workers} worker(s)) parsing "
            "the record into a dict and answering a constant"
        ),
        children=[Child("uvicorn", argv, home / "ceiling.log", _env(), home)],
        port=port,
        path=f"/v1/models/{demo.name}/predict",
        score_path=("prediction", "score"),
    )


BUILDERS: dict[str, Callable[[DemoModel, Path, StackOptions], SystemSpec]] = {
    "tierkit-grpc": _tierkit("grpc"),
    "tierkit-rest": _tierkit("rest"),
    "flask-one-tier": flask_one_tier,
    "flask-two-tier": flask_two_tier,
    "kserve": kserve,
    "ceiling": ceiling,
}


def pick(value: Any, path: tuple[Any, ...]) -> Any:
    """``value[path[0]][path[1]]...``; None when the answer has no such place."""
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value
