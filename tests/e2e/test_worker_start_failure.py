"""``python -m logic_service serve --workers 2``: a failed start exits non-zero, a stop exits 0.

A container runtime, Supervisor (./scripts/up) and systemd judge a service by
its exit code: when no worker can start, the command must say so with a
non-zero code and the cause on stderr, not exit 0 or restart its workers
forever (issue 23, finding 4). Real subprocesses; no graph tier is needed for a
worker to start (it answers /healthz while the graph tier is unreachable).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.ports import free_port
from support.processes import ROOT
from support.waiting import wait_until

from .process_tree import alive, descendants

GIVE_UP_WITHIN_S = 90.0  # a failing start ends the command within this


def _serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    stderr = tmp_path / "serve.stderr"
    base = {
        "TIERKIT_LOG__DIR": str(tmp_path / "logs"),
        "TIERKIT_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'tierkit.db'}",
        "TIERKIT_GRAPH__GRPC_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing listens there
    }
    with open(stderr, "wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "logic_service", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | base | env,
        )
    return popen, port, stderr


def _exit_code(popen: subprocess.Popen, timeout: float) -> int:
    """Its exit code within ``timeout``; else it and its workers are stopped (by pid)."""
    try:
        return popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(popen)
        raise


def _stop(popen: subprocess.Popen) -> None:
    if popen.poll() is not None:
        return
    workers = descendants(popen.pid)
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=10)
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("case", "env", "cause"),
    [
        # Fails in every worker's lifespan (opening the database), or before uvicorn
        # where the command checks the schema first.
        (
            "database",
            {"TIERKIT_STORAGE__DATABASE_URL": "sqlite:////proc/forbidden/x.db"},
            "/proc/forbidden",
        ),
        # Fails in every worker's app factory only (the parent never opens the log).
        ("log dir", {"TIERKIT_LOG__DIR": "/proc/forbidden/logs"}, "/proc/forbidden/logs"),
    ],
)
def test_workers_that_cannot_start_end_the_command_non_zero(
    tmp_path: Path, case: str, env: dict[str, str], cause: str
) -> None:
    if case == "log dir":  # the parent's prometheus directory must still be creatable
        env = env | {"TIERKIT_METRICS_DIR": str(tmp_path / "prometheus")}
    popen, _, stderr = _serve(tmp_path, **env)
    try:
        code = _exit_code(popen, GIVE_UP_WITHIN_S)
    except subprocess.TimeoutExpired:
        text = stderr.read_text(errors="replace")
        raise AssertionError(
            f"still running after {GIVE_UP_WITHIN_S:.0f}s ({text.count('Traceback')} "
            f"tracebacks so far):\n{text[-3000:]}"
        ) from None
    text = stderr.read_text(errors="replace")
    assert code != 0, text[-3000:]
    assert cause in text, text[-3000:]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_normal_stop_of_two_workers_exits_0(tmp_path: Path, stop: signal.Signals) -> None:
    popen, port, stderr = _serve(tmp_path)
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
            90,
            "the workers to answer /healthz",
        )
        popen.send_signal(stop)
        code = _exit_code(popen, 30)
    finally:
        _stop(popen)
    assert code == 0, stderr.read_text(errors="replace")[-3000:]


def test_serve_exits_non_zero_when_every_worker_lifespan_fails(tmp_path: Path) -> None:
    """The lifespan path on its own: ``serve()`` without the command's database check first.

    uvicorn's supervisor stops when a worker exits with STARTUP_FAILURE, then
    returns normally; ``serve`` must turn that into a non-zero exit.
    """
    port, stderr = free_port(), tmp_path / "serve.stderr"
    program = (
        "import sys\n"
        "from logic_service.settings import load_settings\n"
        "from logic_service.server import serve\n"
        f"sys.exit(serve(load_settings(workers=2, port={port})))\n"
    )
    env = {
        "TIERKIT_LOG__DIR": str(tmp_path / "logs"),
        "TIERKIT_STORAGE__DATABASE_URL": "sqlite:////proc/forbidden/x.db",
    }
    with open(stderr, "wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-c", program],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | env,
        )
    try:
        code = _exit_code(popen, GIVE_UP_WITHIN_S)
    finally:
        _stop(popen)
    text = stderr.read_text(errors="replace")
    assert code == 3, text[-3000:]  # uvicorn's STARTUP_FAILURE, as with one worker
    assert "/proc/forbidden" in text and "failed to start" in text, text[-3000:]
