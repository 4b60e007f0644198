"""Fixtures for the graph tier's tests: the model zoo and one shared server on loopback.

``graph_server`` (session scope) is ``python -m graph_service`` started as a
subprocess over the zoo (``support.model_zoo``), exactly as a user starts it, on
free 127.0.0.1 ports, and waited for until every model has an AVAILABLE version.
It is a ``support.graph_tier.GraphServer`` (``.grpc_target``, ``.rest_url``,
``.repo``, ``.config_path``, ``.process``, ``.socket_path``, ``.log_path``,
``.metrics_path``, ``.log_text()``).

Tests must not change the shared server's repo or config; tests that mutate
things start a private server with ``support.graph_tier.start_graph_server``.
Helpers are imported from ``support``, never from this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.graph_tier import GraphServer, start_graph_server
from support.model_zoo import Zoo, build_zoo
from support.waiting import wait_for


def zoo_config(repo: Path) -> str:
    """The shared server's ModelServerConfig (labels on half_plus_two)."""
    return f"""
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{repo / "half_plus_two"}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "tf2_multi"
    base_path: "{repo / "tf2_multi"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "keras_export"
    base_path: "{repo / "keras_export"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "broken"
    base_path: "{repo / "broken"}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
  }}
}}
"""


ZOO_MODELS = ["half_plus_two", "tf2_multi", "keras_export", "broken"]


@pytest.fixture(scope="session")
def model_zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """The built models (session-scoped; never mutate ``zoo.repo`` or ``zoo.originals``)."""
    return build_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def graph_server(model_zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphServer]:
    """The shared graph server over the zoo (read-only for tests)."""
    server = start_graph_server(
        tmp_path_factory.mktemp("graph_server"),
        model_zoo.repo,
        zoo_config(model_zoo.repo),
        wait_models=ZOO_MODELS,
    )
    yield server
    server.stop()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """The ``wait_for(condition, timeout=30, interval=0.1, message=...)`` helper."""
    return wait_for
