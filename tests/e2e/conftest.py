"""Both tiers as real processes on free loopback ports, started once per session.

``graph`` runs ``python -m graph_service`` on a tmp model repository holding one
published ctr version (and the other models of ``stack.MODELS``); it can be
stopped and started again on the same ports. ``logic`` runs ``python -m
logic_service serve`` against it, once per protocol (gRPC, REST): every test
using it runs for both. Helpers the tests import live in ``stack.py`` and
``tests/support``, never here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.ctr_artifacts import fitted_transformer
from support.ctr_versions import publish_guarded_model, publish_tensor_model, publish_version
from support.graph_tier import GraphTier, graph_tier

from . import alt_features
from .stack import (
    ALT_MODEL,
    FIRST_VERSION,
    GUARDED_MODEL,
    LABELLED_MODEL,
    LABELLED_POLICY,
    MODEL,
    MODELS,
    SCALAR_MODEL,
    TENSOR_MODEL,
    LogicTier,
    start_logic,
)


@pytest.fixture(scope="session")
def transformer() -> Any:
    return fitted_transformer(seed=1)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def graph(stack_dir: Path, transformer: Any) -> Iterator[GraphTier]:
    repo = stack_dir / "serving_models"
    publish_version(repo, MODEL, FIRST_VERSION, transformer, seed=1)
    alt = fitted_transformer(seed=2, derive=alt_features.derive)
    publish_version(
        repo,
        ALT_MODEL,
        7,
        alt,
        seed=2,
        function=alt_features.FUNCTION_PATH,
        derive=alt_features.derive,
    )
    publish_tensor_model(repo, TENSOR_MODEL, 1)
    publish_tensor_model(repo, LABELLED_MODEL, 1)
    publish_tensor_model(repo, LABELLED_MODEL, 2)
    publish_tensor_model(repo, SCALAR_MODEL, 1, batch_major=False)
    publish_guarded_model(repo, GUARDED_MODEL, 1)
    config = stack_dir / "models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{m}" base_path: "{repo / m}" model_platform: "tensorflow" '
            f"{LABELLED_POLICY if m == LABELLED_MODEL else ''} }}\n"
            for m in MODELS
        )
        + "}\n"
    )
    tier = graph_tier(
        config,
        repo,
        stack_dir / "graph.log",
        MODELS,
        "--file_system_poll_wait_seconds=1",
        # as with TF Serving, labels on versions still loading need this at startup
        "--allow_version_labels_for_unavailable_models",
    )
    yield tier
    tier.stop()


@pytest.fixture(scope="session", params=["grpc", "rest"])
def logic(request: pytest.FixtureRequest, graph: GraphTier, stack_dir: Path) -> Iterator[LogicTier]:
    tier = start_logic(graph, stack_dir, request.param)
    yield tier
    tier.process.stop()
