"""The Docker engine of the real-container tests: ``scripts/docker-sandbox start``.

The tests never skip for want of an engine: this machine can run one
(Debian's docker.io, a private dockerd), so the sandbox script installs and
starts it, builds the stand-in images, and the tests run against it. A
daemon the sandbox started for this test run is stopped again at the end; one
that already ran (a developer's, or an earlier `start`) is left alone.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "scripts" / "docker-sandbox"
START_TIMEOUT_S = 1500  # a fresh machine: debootstrap, apt installs, TensorFlow for the stand-in


@dataclass(frozen=True)
class Engine:
    """What a docker or compose command needs in its environment."""

    variables: dict[str, str]

    @property
    def started_here(self) -> bool:
        return self.variables.get("TIERKIT_DOCKER_SANDBOX") == "started"

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | self.variables | extra


def start_engine() -> Engine:
    run = subprocess.run(
        [str(SANDBOX), "start"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0 and lines, (
        f"scripts/docker-sandbox start exited {run.returncode}:\n{run.stderr[-4000:]}"
    )
    variables = dict(part.split("=", 1) for part in lines[-1].split())
    assert "DOCKER_CONFIG" in variables, lines[-1]
    return Engine(variables)


def stop_engine(engine: Engine) -> None:
    if engine.started_here:
        subprocess.run([str(SANDBOX), "stop"], capture_output=True, timeout=120, check=False)
