"""Following the tiers through Supervisor's eyes: tell each exit, spot a crash loop.

Polled every half second over XML-RPC. An exit shows as a new ``stop`` time
of the program; how long the process had run tells a start-up failure
(Supervisor retries it with backoff, then FATAL) from a tier that died while
serving (Supervisor restarts it at once; ``RestartWindow`` bounds how often).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stack_supervision.restart_policy import START_RETRIES, RestartWindow
from stack_supervision.supervisord_config import TierProgram
from stack_supervision.supervisord_process import (
    RUN_MARK,
    ProcessInfo,
    Supervisord,
    tail_lines,
)
from stack_supervision.up_log import UpLog

TAIL_LINES = 25


def duration(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``2h07m``: how long a tier ran, for people."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def window(seconds: float) -> str:
    """``10 min``, ``90 s``: the restart window as the user set it."""
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"


@dataclass
class CrashLoop:
    """A tier that is not coming back by itself, with what the user needs to fix it."""

    program: TierProgram
    what: str  # "it failed to start 4 times in a row, ..."
    reason: str  # how it exited the last time: "exit status 1"

    def report(self) -> str:
        lines = tail_lines(self.program.stdout_log, TAIL_LINES)
        marks = [i for i, line in enumerate(lines) if line.startswith(RUN_MARK)]
        lines = lines[marks[-1] + 1 :] if marks else lines  # this run's lines only
        body = "\n".join(f"    {line}" for line in lines) or "    (nothing)"
        also = f"; its own log is {self.program.own_log}" if self.program.own_log else ""
        return (
            f"{self.program.title} is in a crash loop: {self.what}; last exit: {self.reason}. "
            f"Not restarting it again{also}. Last lines of {self.program.stdout_log}:\n{body}"
        )


@dataclass
class _Followed:
    program: TierProgram
    restarts: RestartWindow
    pid: int = 0
    start: int = 0  # epoch seconds the current (or last) process started
    stop: int = 0  # epoch seconds of the last exit already told
    start_failures: int = 0  # exits within start_seconds since it last ran longer
    restarting: bool = False  # died while serving: tell when the new process is there
    state: str = ""


@dataclass
class TierWatch:
    supervisord: Supervisord
    programs: Sequence[TierProgram]
    up_log: UpLog
    max_restarts: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None  # clock() at the first exit not yet followed by /readyz 200
    down_tier: str = ""  # the title of the tier that exited then
    _tiers: list[_Followed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tiers = [
            _Followed(p, RestartWindow(self.max_restarts, self.window_s)) for p in self.programs
        ]

    def poll(self) -> CrashLoop | None:
        infos = self.supervisord.processes()
        for tier in self._tiers:
            crash_loop = self._follow(tier, infos[tier.program.name])
            if crash_loop is not None:
                return crash_loop
        return None

    def all_running(self) -> bool:
        """Every tier past Supervisor's ``startsecs`` as of the last poll."""
        return all(tier.state == "RUNNING" for tier in self._tiers)

    def _follow(self, tier: _Followed, info: ProcessInfo) -> CrashLoop | None:
        tier.state = info.state
        if info.state == "FATAL":
            return CrashLoop(
                tier.program,
                f"it failed to start {START_RETRIES + 1} times in a row, retried after 1, 2 and "
                f"3 s (each attempt exited within {tier.program.start_seconds} s)",
                self.supervisord.last_exit(info).reason,
            )
        # A process exited since the last poll: a new stop time, or the pid seen is gone
        # (two exits within one second share a stop time).
        if (info.stop and info.stop != tier.stop) or (tier.pid and tier.pid != info.pid):
            crash_loop = self._exited(tier, info)
            if crash_loop is not None:
                return crash_loop
        if info.pid and info.pid != tier.pid and tier.restarting:
            tier.restarting = False
            self.up_log.say(f"{tier.program.title} started again (pid {info.pid})", stamp=True)
        tier.pid = info.pid
        if info.pid:
            tier.start = info.start
        return None

    def _exited(self, tier: _Followed, info: ProcessInfo) -> CrashLoop | None:
        """Clear what an exited process left behind, tell and count the exit."""
        title = tier.program.title
        last_exit = self.supervisord.last_exit(info)
        reason, ran = last_exit.reason, last_exit.ran_s
        if ran is None:  # whole seconds from XML-RPC; the new process's start if respawned
            started = tier.start if info.pid else info.start
            ran = info.stop - started if started else 0
        tier.stop = info.stop
        exited_pid = tier.pid if tier.pid != info.pid else 0
        cleared = bool(exited_pid) and self.supervisord.kill_leftovers(exited_pid)
        if self.down_since is None:
            self.down_since, self.down_tier = self.clock(), title
        crash_loop = self._count(tier, reason, ran)
        if cleared:
            self.up_log.say(
                f"{title}: killed what pid {exited_pid} left running (child processes such as "
                "uvicorn workers would keep the tier's port)",
                error=True,
                stamp=True,
            )
        return crash_loop

    def _count(self, tier: _Followed, reason: str, ran: float) -> CrashLoop | None:
        title = tier.program.title
        if ran < tier.program.start_seconds:
            tier.start_failures += 1
            if tier.start_failures <= START_RETRIES:
                self.up_log.say(
                    f"{title} exited during start-up ({reason}); Supervisor retries it in "
                    f"{tier.start_failures} s (retry {tier.start_failures} of {START_RETRIES})",
                    error=True,
                    stamp=True,
                )
            return None
        tier.start_failures = 0
        if tier.restarts.record(self.clock()):
            return CrashLoop(
                tier.program,
                f"it exited {tier.restarts.count} times within {window(self.window_s)}, "
                f"each time after running over {tier.program.start_seconds} s",
                reason,
            )
        tier.restarting = True
        self.up_log.say(
            f"{title} exited ({reason}) after running {duration(ran)}; restarting it "
            f"(restart {tier.restarts.count} of at most {self.max_restarts} "
            f"within {window(self.window_s)})",
            error=True,
            stamp=True,
        )
        return None
