"""``scripts/local_stack.py`` (what ./scripts/up runs) as a real subprocess on free ports.

The tests of the local stack start it the way a user does, with its own
models.config and logic.yaml pointing at the session's tmp model repository,
read what it prints, and stop it with SIGINT as Ctrl-C would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from support.graph_tier import GraphTier
from support.ports import free_port
from support.processes import ROOT
from support.waiting import wait_until

from .stack import MODEL

BANNER_END = "Ctrl-C stops both tiers"


@dataclass
class LocalStackRun:
    popen: subprocess.Popen
    name: str
    output: Path
    log_dir: Path
    port: int
    graph_port: int
    graph_rest_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def effective_models_config(self) -> Path:
        """What the graph tier reads: models.config plus the versions in use (the keeper's)."""
        return self.log_dir.parent / f"{self.name}-effective-models.config"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_banner(self, timeout: float = 150) -> str:
        def banner() -> str | None:
            assert self.popen.poll() is None, self.text()
            text = self.text()
            return text if BANNER_END in text else None

        return wait_until(banner, timeout, "the local stack's banner", interval=0.5)

    def interrupt(self, timeout: float) -> tuple[int, float]:
        """Ctrl-C: SIGINT to the runner; its exit code and the seconds it took to exit."""
        started = time.monotonic()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            raise AssertionError(
                f"the runner did not exit within {timeout:.0f}s of SIGINT:\n{self.text()}"
            ) from None
        return code, time.monotonic() - started


def write_models_config(path: Path, repo: Path) -> Path:
    path.write_text(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{repo / MODEL}" '
        'model_platform: "tensorflow" } }\n'
    )
    return path


def start_local_stack(
    source: GraphTier | Path,
    stack_dir: Path,
    name: str,
    *extra: str,
    models_config: Path | None = None,
    logic_settings: str = "",
    models: str = f"[{{name: {MODEL}}}]",
) -> LocalStackRun:
    """Start the runner on three free ports with its own config files, logs and database.

    ``source`` is the session's graph tier (its model repository is served) or a
    model repository of the test's own; ``logic_settings`` is appended to the
    generated logic.yaml (an admin token, say); ``models`` is its ``models:`` list
    (YAML flow style).
    """
    repo = source.repo if isinstance(source, GraphTier) else source
    if models_config is None:
        models_config = write_models_config(stack_dir / f"{name}-models.config", repo)
    logic_config = stack_dir / f"{name}-logic.yaml"
    logic_config.write_text(
        f"model_repository: {repo}\nmodels: {models}\n"
        f"storage: {{database_url: 'sqlite:///{stack_dir / f'{name}-tierkit.db'}'}}\n"
        + logic_settings
    )
    port, graph_port, graph_rest_port = (free_port() for _ in range(3))
    log_dir = stack_dir / f"{name}-logs"
    output = stack_dir / f"{name}.out"
    with open(output, "wb") as sink:
        popen = subprocess.Popen(
            [
                sys.executable,
                "scripts/local_stack.py",
                "--port",
                str(port),
                "--graph-port",
                str(graph_port),
                "--graph-rest-port",
                str(graph_rest_port),
                "--config",
                str(logic_config),
                "--models-config",
                str(models_config),
                # the graph tier's config, kept by the logic tier (never the repository's var/)
                "--effective-models-config",
                str(stack_dir / f"{name}-effective-models.config"),
                "--log-dir",
                str(log_dir),
                "--wait",
                "120",
                *extra,
            ],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={"PYTHONPATH": str(ROOT / "tests"), "PATH": "/usr/bin:/bin"},
        )
    return LocalStackRun(popen, name, output, log_dir, port, graph_port, graph_rest_port)
