"""The compose stack's secrets: made once, kept afterwards, readable where they are needed."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from logic_service.cli.init_secrets import ensure_secrets
from logic_service.settings import LogicSettings


def test_first_run_creates_every_secret_and_later_runs_keep_them(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    assert ensure_secrets(folder) == {"db_password": True, "admin_token": True}
    first = {p.name: p.read_text() for p in folder.iterdir()}
    assert set(first) == {"db_password", "admin_token"}
    assert first["db_password"] != first["admin_token"]
    assert all(len(v.strip()) >= 40 for v in first.values())  # 32 random bytes, url-safe
    # Read by two users (postgres 999, the logic tier 10001): world-readable, never writable.
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert ensure_secrets(folder) == {"db_password": False, "admin_token": False}
    assert {p.name: p.read_text() for p in folder.iterdir()} == first


def test_a_preset_password_is_used_on_the_first_run_only(tmp_path: Path) -> None:
    ensure_secrets(tmp_path, {"db_password": "chosen-by-the-operator"})
    assert (tmp_path / "db_password").read_text() == "chosen-by-the-operator\n"
    ensure_secrets(tmp_path, {"db_password": "another"})
    assert (tmp_path / "db_password").read_text() == "chosen-by-the-operator\n"


def test_the_cli_reports_what_it_did_and_fails_clearly(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "logic_service", "init-secrets", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    made = run(str(tmp_path / "s"))
    assert made.returncode == 0, made.stderr
    assert "db_password created" in made.stdout and "admin_token created" in made.stdout
    kept = run(str(tmp_path / "s"))
    assert "db_password kept" in kept.stdout
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    failed = run(str(blocked / "s"))
    assert failed.returncode == 1 and "cannot write" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_admin_token_from_a_file(tmp_path: Path) -> None:
    token = tmp_path / "admin_token"
    token.write_text("from-the-volume\n")
    settings = LogicSettings(admin_token_file=token)
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "from-the-volume"
    given = LogicSettings(admin_token="given", admin_token_file=token)
    assert given.admin_token is not None and given.admin_token.get_secret_value() == "given"
    with pytest.raises(ValueError, match="admin_token_file: cannot read"):
        LogicSettings(admin_token_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match=r"admin_token_file: .* is empty"):
        LogicSettings(admin_token_file=tmp_path / "empty")
