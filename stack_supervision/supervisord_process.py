"""supervisord as the runner's child: started in the foreground, asked over XML-RPC, stopped.

supervisord runs in its own session, so the terminal's Ctrl-C reaches the
runner only and the runner decides the order of the stop (Supervisor stops the
logic tier first, by priority). Should the runner itself be killed, the kernel
sends supervisord SIGTERM (Linux ``PR_SET_PDEATHSIG``), so the tiers are not
left running without anyone to stop them.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from stack_supervision.restart_policy import STOP_WAIT_SECONDS
from stack_supervision.supervisord_config import (
    RpcCredentials,
    SupervisorPaths,
    TierProgram,
    render_config,
)

PR_SET_PDEATHSIG = 1
RUN_MARK = "=== "  # starts the line written into each tier's log when a run starts
START_TIMEOUT_S = 15.0


class SupervisordError(RuntimeError):
    """supervisord did not start, or went away under the runner."""


@dataclass(frozen=True)
class ProcessInfo:
    """What ``supervisor.getAllProcessInfo`` says about one program."""

    name: str
    state: str  # STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN
    pid: int  # 0 when not running
    start: int  # epoch seconds of the last start
    stop: int  # epoch seconds of the last exit
    exit_status: int  # of the last exit after RUNNING; 0 otherwise (see exit_reason)

    @classmethod
    def from_rpc(cls, info: Mapping[str, Any]) -> ProcessInfo:
        return cls(
            info["name"],
            info["statename"],
            int(info["pid"]),
            int(info["start"]),
            int(info["stop"]),
            int(info["exitstatus"]),
        )


@dataclass(frozen=True)
class LastExit:
    reason: str  # "exit status 1", "terminated by SIGKILL"
    ran_s: float | None  # from spawn to exit; None when the log does not tell


def _log_time(stamp: str) -> float | None:
    """supervisord's ``2026-12-05 18:35:25,986`` as epoch seconds (local time, as it logs)."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisord:
    def __init__(self, programs: Sequence[TierProgram], log_dir: Path, directory: Path) -> None:
        self.programs = {p.name: p for p in programs}
        run_dir = Path(tempfile.mkdtemp(prefix="tierkit-up-"))  # short: a socket path
        self.paths = SupervisorPaths(run_dir, log_dir)
        credentials = RpcCredentials("up", secrets.token_hex(16))
        self.paths.config.write_text(
            render_config(programs, self.paths, directory, credentials, as_root=os.geteuid() == 0)
        )
        self._output = run_dir / "supervisord.out"
        self.popen: subprocess.Popen | None = None
        self._transport = SupervisorTransport(
            credentials.username, credentials.password, f"unix://{self.paths.socket}"
        )
        self._rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self._transport)

    def _call(self, method: str) -> Any:
        """One XML-RPC call; a failed one drops the kept-alive connection for the next."""
        try:
            return getattr(self._rpc.supervisor, method)()
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
            self._transport.close()
            raise

    def start(self, env: Mapping[str, str]) -> None:
        """Start supervisord (which starts the tiers) and wait until it answers XML-RPC."""
        for program in self.programs.values():  # where this run begins in each tier's log
            with open(program.stdout_log, "ab") as log:
                log.write(f"\n{RUN_MARK}{time.strftime('%Y-%m-%d %H:%M:%S')} ".encode())
                log.write(f"{shlex.join(program.argv)}\n".encode())
        argv = [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.paths.config)]
        with open(self._output, "wb") as output:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, http.client.HTTPException, xmlrpc.client.Fault):
                if self._call("getState")["statename"] == "RUNNING":
                    return
            time.sleep(0.1)
        raise SupervisordError(f"supervisord did not answer within {START_TIMEOUT_S:.0f}s")

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise SupervisordError(
                f"supervisord exited with code {self.popen.returncode}: "
                f"{self._output.read_text(errors='replace').strip()}"
            )

    def processes(self) -> dict[str, ProcessInfo]:
        try:
            infos = self._call("getAllProcessInfo")
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault) as exc:
            self.check_alive()
            raise SupervisordError(f"supervisord does not answer: {exc}") from exc
        return {info["name"]: ProcessInfo.from_rpc(info) for info in infos}

    def last_exit(self, info: ProcessInfo) -> LastExit:
        """How and after how long the program last exited, as supervisord logged it.

        Over XML-RPC a signal and a quick exit both read exit status 0, and the
        start and stop times are whole seconds; the log has "exited: graph
        (terminated by SIGKILL; not expected)" and millisecond timestamps.
        """
        name = re.escape(info.name)
        exited = re.compile(rf"^(\S+ \S+) \w+ exited: {name} \((.+?)(?:; (?:not )?expected)?\)$")
        spawned = re.compile(rf"^(\S+ \S+) \w+ spawned: '{name}' with pid \d+$")
        reason, exit_time = None, None
        for line in reversed(tail_lines(self.paths.log, 400)):
            if reason is None:
                match = exited.match(line)
                if match:
                    reason, exit_time = match.group(2), _log_time(match.group(1))
            else:
                match = spawned.match(line)
                if match:
                    start_time = _log_time(match.group(1))
                    if exit_time is not None and start_time is not None:
                        return LastExit(reason, exit_time - start_time)
                    break
        return LastExit(reason or f"exit status {info.exit_status}", None)

    def kill_leftovers(self, pid: int) -> bool:
        """SIGKILL what is left of a tier process that died: True if anything was.

        Supervisor makes each tier lead its own process group, but signals that
        group only when it stops the tier; the logic tier's uvicorn workers
        outlive a killed parent and keep its port, so the restarted tier could
        not bind it.
        """
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self) -> None:
        """Stop both tiers (logic first) and supervisord; SIGKILL whatever outlives the wait."""
        if self.popen is None:
            return
        try:
            if self.popen.poll() is None:
                self._stop_supervisord()
        finally:
            shutil.rmtree(self.paths.run_dir, ignore_errors=True)

    def _stop_supervisord(self) -> None:
        assert self.popen is not None
        try:
            pids = [info.pid for info in self.processes().values() if info.pid]
        except SupervisordError:
            pids = []
        self.popen.send_signal(signal.SIGTERM)  # supervisord's shutdown: ordered, waited
        try:
            self.popen.wait(timeout=STOP_WAIT_SECONDS * len(self.programs) + 5)
            return
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
        for pid in pids:  # each tier leads its own process group (Supervisor's setpgrp)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def tail_lines(path: Path, lines: int, max_bytes: int = 65_536) -> list[str]:
    """The last ``lines`` lines of a file (read from its last ``max_bytes``), [] if unreadable."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - max_bytes))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
