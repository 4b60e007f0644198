"""``scripts/local_stack.py`` (what ./scripts/up runs): start, banner, demo curl, clean stop;
``./scripts/up --help``: the usage only."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.graph_tier import GraphTier
from support.processes import ROOT

from logic_service.features import ctr

from .local_stack_run import BANNER_END, start_local_stack


def test_up_serves_the_printed_curl_and_stops_on_ctrl_c(graph: GraphTier, stack_dir: Path) -> None:
    up = start_local_stack(graph, stack_dir, "up")
    try:
        text = up.wait_for_banner(150)
        assert f"http://127.0.0.1:{up.port}/docs" in text
        assert f"gRPC 127.0.0.1:{up.graph_port}" in text
        curl = text[text.index("curl -s") : text.index(BANNER_END)].replace("\\\n", " ")
        words = shlex.split(curl)
        url, body = words[words.index("-X") + 2], json.loads(words[words.index("-d") + 1])
        assert body == ctr.EXAMPLE_REQUEST
        response = httpx.post(url, json=body, timeout=10)
        assert response.status_code == 200, response.text
        assert 0.0 < response.json()["prediction"]["score"] < 1.0
        assert (up.log_dir / "logic.log").is_file() and (up.log_dir / "graph.log").is_file()
    finally:
        code, _ = up.interrupt(timeout=60)
    assert code == 0, up.text()
    assert "[up] stopped" in up.text()
    for port in (up.port, up.graph_port, up.graph_rest_port):  # both tiers are gone
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"port {port} still answers after the stack stopped")


def _checkout_copy(root: Path, with_venv: bool) -> Path:
    """The repository's scripts and packages under ``root``, its model repository empty."""
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    for package in ("stack_supervision", "graph_service", "logic_service", "export"):
        (root / package).symlink_to(ROOT / package)
    if with_venv:
        (root / ".venv").symlink_to(ROOT / ".venv")
    (root / "serving_models").mkdir()
    return root


@pytest.mark.parametrize("with_venv", [True, False], ids=["venv", "no-venv"])
def test_up_help_prints_usage_and_nothing_else(tmp_path: Path, with_venv: bool) -> None:
    """No demo trained, no model published, no .venv made: the usage on stdout, exit 0."""
    root = _checkout_copy(tmp_path / "checkout", with_venv)
    system = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    done = subprocess.run(
        ["bash", str(root / "scripts" / "up"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": system or sys.executable},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ./scripts/up "), done.stdout
    assert "exit codes:" in done.stdout  # the whole help, epilog included
    assert done.stderr == ""
    assert list((root / "serving_models").iterdir()) == []
    assert not (root / ".demo").exists()
    assert (root / ".venv").exists() == with_venv
