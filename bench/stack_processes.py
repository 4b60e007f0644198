"""The processes of one system under test: start, stop, explain a failure, and meter them.

Every system is one or more real processes (graph tier, logic tier, gunicorn
and its workers, ...), each in its own session so that stopping it reaches the
workers it forked, and each with its output in a log file whose last lines are
shown when it fails to start. ``ProcessTreeSampler`` watches the whole tree
with psutil while a load runs: CPU seconds and peak RSS per process are part
of the report, because a system that is fast by burning four processes' worth
of memory is a different trade than one that is not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TAIL_LINES = 25


class StartFailed(RuntimeError):
    """A system did not come up; the message carries the log lines that say why."""


@dataclass
class Child:
    """One process of a system, its stdout and stderr in ``log_path``."""

    label: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # Own session: stopping the group reaches gunicorn's and uvicorn's workers.
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "    (no log)"
        return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty log)"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the child's process group, SIGKILL after ``timeout``."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # session leader: its pid is the group id
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Workers that outlived their parent (they are still in the group).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def stop_all(children: list[Child]) -> None:
    """Front first, so it never answers for a back tier that is already gone."""
    for child in reversed(children):
        child.stop()


def failure_report(children: list[Child], why: str) -> str:
    parts = [why]
    for child in children:
        code = child.exit_code()
        state = "running" if code is None else f"exited with code {code}"
        parts.append(f"  {child.label} ({state}), last lines of {child.log_path}:\n{child.tail()}")
    return "\n".join(parts)


@dataclass
class WindowUsage:
    """What each process of a system used during one measured window."""

    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def _child_role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "resource_tracker" in text:
        return "resource tracker"
    if "gunicorn" in text or "multiprocessing" in text or "spawn_main" in text:
        return "worker"
    return os.path.basename(cmdline[0]) if cmdline else "child"


class ProcessTreeSampler:
    """Samples CPU time and RSS of every process under the given children, in a thread."""

    def __init__(self, children: list[Child], interval: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self._roots = []
        for child in children:
            if child.pid is None:
                continue
            try:
                self._roots.append((child.label, psutil.Process(child.pid)))
            except psutil.Error:  # already gone: the load run will show it as errors
                continue
        self._interval = interval
        self._labels: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        self._cpu: dict[int, float] = {}  # last seen cumulative CPU seconds per pid
        self._cpu_start: dict[int, float] = {}
        self._peak: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()

    def _processes(self):
        found = []
        for label, root in self._roots:
            try:
                tree = [root, *root.children(recursive=True)]
            except self._psutil.Error:
                continue
            for proc in tree:
                if proc.pid not in self._labels:
                    if proc is root:
                        name = label
                    else:
                        try:
                            role = _child_role(proc.cmdline())
                        except self._psutil.Error:
                            continue
                        key = f"{label} {role}"
                        self._counts[key] = self._counts.get(key, 0) + 1
                        name = f"{key} {self._counts[key]}"
                    self._labels[proc.pid] = name
                found.append(proc)
        return found

    def _sample(self) -> None:
        with self._lock:
            for proc in self._processes():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        rss = proc.memory_info().rss
                except self._psutil.Error:
                    continue
                self._cpu[proc.pid] = times.user + times.system
                self._peak[proc.pid] = max(self._peak.get(proc.pid, 0), rss)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def begin_window(self) -> None:
        self._sample()
        with self._lock:
            self._cpu_start = dict(self._cpu)
            self._peak = {}
        self._sample()

    def end_window(self) -> WindowUsage:
        self._sample()
        usage = WindowUsage()
        with self._lock:
            for pid, label in sorted(self._labels.items()):
                if pid not in self._peak:  # not alive during the window
                    continue
                usage.cpu_s[label] = round(self._cpu[pid] - self._cpu_start.get(pid, 0.0), 3)
                usage.peak_rss_mb[label] = round(self._peak[pid] / 2**20, 1)
        return usage

    def rss_mb(self) -> float:
        """Current RSS of the whole tree (MB)."""
        total = 0
        with self._lock:
            for proc in self._processes():
                with contextlib.suppress(self._psutil.Error):
                    total += proc.memory_info().rss
        return total / 2**20

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for(condition, timeout: float, interval: float = 0.1):
    """Call ``condition`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None
