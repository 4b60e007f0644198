"""checkov and KServe's Python SDK, in a virtualenv of their own (.cache/k8s-tools).

Both are registry packages installed at test time, never copied into the
repository; why they live apart from .venv is in tools-requirements.txt. The
environment (about 400 MB) is made with .venv's uv the first time (5 s here with
uv's package cache warm) and again only when tools-requirements.txt changes (a
stamp holds its sha256).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("tools-requirements.txt")
TOOLS_VENV = Path(os.environ.get("TIERKIT_K8S_TOOLS_VENV", ROOT / ".cache" / "k8s-tools"))
UV = ROOT / ".venv" / "bin" / "uv"
BASE_PYTHON = ROOT / ".venv" / "bin" / "python"


def _run(*args: str) -> None:
    run = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, f"{' '.join(args)} failed:\n{run.stdout}\n{run.stderr}"


@cache
def tools_python() -> Path:
    """The tools environment's python, made or refreshed when needed."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = TOOLS_VENV / ".tierkit-requirements"
    python = TOOLS_VENV / "bin" / "python"
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == want:
        return python
    assert UV.is_file(), f"{UV} missing: run ./scripts/test once (it installs uv into .venv)"
    started = time.monotonic()
    _run(
        str(UV),
        "venv",
        "--quiet",
        "--allow-existing",
        "--python",
        str(BASE_PYTHON),
        str(TOOLS_VENV),
    )
    _run(str(UV), "pip", "install", "--quiet", "--python", str(python), "-r", str(REQUIREMENTS))
    stamp.write_text(want + "\n")
    print(f"[tests/k8s] made {TOOLS_VENV} in {time.monotonic() - started:.1f} s")
    return python


def tool(name: str) -> Path:
    return tools_python().parent / name
