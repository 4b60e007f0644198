"""The pure parts of stack_supervision: the generated supervisord.conf and the restart window."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from stack_supervision.restart_policy import RestartWindow
from stack_supervision.supervisord_config import (
    RpcCredentials,
    SupervisorPaths,
    TierProgram,
    render_config,
)
from stack_supervision.tier_watch import duration, window


def _program(**changes: object) -> TierProgram:
    fields: dict = {
        "name": "logic",
        "title": "logic tier",
        "argv": ["/venv/bin/python", "-m", "logic_service", "serve", "--config", "/a b/100%.yaml"],
        "stdout_log": Path("/logs/logic.stderr.log"),
        "priority": 200,
        "environment": {"TIERKIT_LOG__DIR": "/logs dir/50%", "TIERKIT_LOG__CONSOLE": "false"},
    }
    return TierProgram(**(fields | changes))


def _rendered(program: TierProgram, tmp_path: Path) -> configparser.RawConfigParser:
    text = render_config(
        [program],
        SupervisorPaths(tmp_path, tmp_path / "logs"),
        tmp_path,
        RpcCredentials("u", "p"),
        as_root=False,
    )
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_the_command_survives_supervisors_parsing(tmp_path: Path) -> None:
    section = _rendered(_program(), tmp_path)["program:logic"]
    # Supervisor expands %(...)s, so a literal % is doubled, then splits with shlex.
    command = section["command"].replace("%%", "%")
    assert shlex.split(command)[-1] == "/a b/100%.yaml"
    assert section["environment"] == (
        'TIERKIT_LOG__DIR="/logs dir/50%%",TIERKIT_LOG__CONSOLE="false"'
    )


def test_each_tier_is_stopped_as_a_group_and_its_log_rotated(tmp_path: Path) -> None:
    section = _rendered(_program(), tmp_path)["program:logic"]
    assert section["stopasgroup"] == section["killasgroup"] == "true"
    assert section["autorestart"] == "true"
    assert section["stdout_logfile"] == "/logs/logic.stderr.log"
    assert section["stdout_logfile_maxbytes"] == "10MB"
    assert section["redirect_stderr"] == "true"


@pytest.mark.parametrize("value", ['say "hi"', "it's", "two\nlines"])
def test_values_supervisor_cannot_carry_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match=r"TIERKIT_X|line break"):
        _rendered(_program(environment={"TIERKIT_X": value}), tmp_path)


def test_restarts_past_the_limit_within_the_window_are_a_crash_loop() -> None:
    restarts = RestartWindow(max_restarts=2, window_s=60)
    assert not restarts.record(0.0)
    assert not restarts.record(10.0)
    assert restarts.record(20.0)  # the third within a minute


def test_restarts_older_than_the_window_no_longer_count() -> None:
    restarts = RestartWindow(max_restarts=2, window_s=60)
    for now in (0.0, 50.0, 100.0, 150.0, 200.0):  # one every 50 s: at most two per minute
        assert not restarts.record(now)
    assert restarts.count == 2


def test_durations_read_as_people_write_them() -> None:
    assert duration(9.7) == "9 s"
    assert duration(185) == "3m05s"
    assert duration(7620) == "2h07m"
    assert window(600) == "10 min"
    assert window(90) == "90 s"
