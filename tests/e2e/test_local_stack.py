"""``scripts/local_stack.py`` (what ./scripts/up runs): start, banner, demo curl, clean stop."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from logic_service.features import ctr

from .conftest import MODEL, ROOT, GraphTier, free_port, wait_until


def test_up_serves_the_printed_curl_and_stops_on_ctrl_c(graph: GraphTier, stack_dir: Path) -> None:
    models_config = stack_dir / "up-models.config"
    models_config.write_text(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{graph.repo / MODEL}" '
        'model_platform: "tensorflow" } }\n'
    )
    logic_config = stack_dir / "up-logic.yaml"
    logic_config.write_text(
        f"model_repository: {graph.repo}\nmodels: [{{name: {MODEL}}}]\n"
        f"storage: {{database_url: 'sqlite:///{stack_dir / 'up-tierkit.db'}'}}\n"
    )
    ports = [free_port() for _ in range(3)]
    log_dir = stack_dir / "up-logs"
    output = stack_dir / "up.out"
    with open(output, "wb") as sink:
        up = subprocess.Popen(
            [
                sys.executable,
                "scripts/local_stack.py",
                "--port",
                str(ports[0]),
                "--graph-port",
                str(ports[1]),
                "--graph-rest-port",
                str(ports[2]),
                "--config",
                str(logic_config),
                "--models-config",
                str(models_config),
                "--log-dir",
                str(log_dir),
                "--wait",
                "120",
            ],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin"},
        )
    try:

        def banner() -> str | None:
            assert up.poll() is None, output.read_text()
            text = output.read_text()
            return text if "Ctrl-C stops both tiers" in text else None

        text = wait_until(banner, 150, "the local stack's banner", interval=0.5)
        assert f"http://127.0.0.1:{ports[0]}/docs" in text
        assert f"gRPC 127.0.0.1:{ports[1]}" in text
        curl = text[text.index("curl -s") : text.index("Ctrl-C")].replace("\\\n", " ")
        words = shlex.split(curl)
        url, body = words[words.index("-X") + 2], json.loads(words[words.index("-d") + 1])
        assert body == ctr.EXAMPLE_REQUEST
        response = httpx.post(url, json=body, timeout=10)
        assert response.status_code == 200, response.text
        assert 0.0 < response.json()["prediction"]["score"] < 1.0
        assert (log_dir / "logic.log").is_file() and (log_dir / "graph.log").is_file()
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
    assert code == 0, output.read_text()
    assert "[up] stopped" in output.read_text()
    for port in ports:  # both tiers are gone
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"port {port} still answers after the stack stopped")
