"""The supervisord.conf of one local stack run, generated from the runner's flags.

Values go through two parsers in Supervisor: ConfigParser-style ``%``
expansion (so ``%`` is written ``%%``) and, for ``environment``, a non-POSIX
shlex split that strips quotes but has no escapes; a value it cannot carry
is refused here rather than passed on garbled.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stack_supervision.restart_policy import START_RETRIES, START_SECONDS, STOP_WAIT_SECONDS

LOG_MAX_BYTES = "10MB"  # tiers' stdout logs and supervisord.log rotate at this size
LOG_BACKUPS = 5


@dataclass(frozen=True)
class TierProgram:
    """One tier as a Supervisor program."""

    name: str  # the program name in Supervisor ("graph")
    title: str  # what the user reads ("graph tier")
    argv: Sequence[str]
    stdout_log: Path  # stdout and stderr, rotated by Supervisor
    priority: int  # lower starts first and stops last
    environment: Mapping[str, str] = field(default_factory=dict)
    own_log: Path | None = None  # a log the tier writes itself, named in crash reports
    start_seconds: int = START_SECONDS  # an exit sooner is a failed start (Supervisor's startsecs)


@dataclass(frozen=True)
class SupervisorPaths:
    run_dir: Path  # private: config, socket, pid file
    log_dir: Path

    @property
    def config(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def log(self) -> Path:
        return self.log_dir / "supervisord.log"


def _value(text: str | os.PathLike[str]) -> str:
    """A config value with Supervisor's ``%(name)s`` expansion disarmed."""
    text = str(text)
    if "\n" in text or "\r" in text:
        raise ValueError(f"supervisord.conf cannot hold a line break: {text!r}")
    return text.replace("%", "%%")


def _environment(variables: Mapping[str, str]) -> str:
    pairs = []
    for key, value in variables.items():
        if not key.isidentifier():
            raise ValueError(f"not an environment variable name: {key!r}")
        if '"' in value or "'" in value:
            raise ValueError(f"{key}: Supervisor's environment= cannot carry quotes: {value!r}")
        pairs.append(f'{key}="{_value(value)}"')
    return ",".join(pairs)


@dataclass(frozen=True)
class RpcCredentials:
    """Per-run user and password of the XML-RPC socket (already private by its folder's mode):
    without them supervisord logs a CRIT line on every start."""

    username: str
    password: str


def render_config(
    programs: Sequence[TierProgram],
    paths: SupervisorPaths,
    directory: Path,
    credentials: RpcCredentials,
    as_root: bool,
) -> str:
    """supervisord.conf: foreground, silent (the runner tells the user), XML-RPC on a socket."""
    lines = [
        "[supervisord]",
        "nodaemon=true",
        "silent=true",
        f"logfile={_value(paths.log.resolve())}",
        f"logfile_maxbytes={LOG_MAX_BYTES}",
        f"logfile_backups={LOG_BACKUPS}",
        "loglevel=info",
        f"pidfile={_value(paths.run_dir.resolve() / 'supervisord.pid')}",
        f"childlogdir={_value(paths.run_dir.resolve())}",
        "identifier=tierkit-up",
        # As root Supervisor logs a CRIT line unless told which user to stay.
        *(["user=root"] if as_root else []),
        "",
        "[unix_http_server]",
        f"file={_value(paths.socket.resolve())}",
        "chmod=0700",
        f"username={_value(credentials.username)}",
        f"password={_value(credentials.password)}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for program in programs:
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={_value(shlex.join(program.argv))}",
            f"directory={_value(directory.resolve())}",
            f"priority={program.priority}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={program.start_seconds}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            # The logic tier's uvicorn workers are its children: signal the whole group.
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_value(program.stdout_log.resolve())}",
            f"stdout_logfile_maxbytes={LOG_MAX_BYTES}",
            f"stdout_logfile_backups={LOG_BACKUPS}",
        ]
        if program.environment:
            lines.append(f"environment={_environment(program.environment)}")
    return "\n".join(lines) + "\n"
