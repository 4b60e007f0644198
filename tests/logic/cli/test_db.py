"""``python -m logic_service db upgrade|current|check`` as operators and Jobs run it.

Real subprocesses, real databases: exit 0 when done, 2 for a configuration
that cannot work (the message names the setting), 1 when the database
refuses or the migration fails. ``serve`` takes the same step before uvicorn
starts, so it refuses the same way, without starting a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.postgres import PostgresServer
from support.release_0_1_0 import build_release_0_1_0

from logic_service.storage.database import create_engine
from logic_service.storage.migrations import runner

HEAD = runner.head_revision()


def tierkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "logic_service", *args],
        cwd=cwd,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def config(tmp_path: Path, storage: str) -> Path:
    path = tmp_path / "logic.yaml"
    path.write_text(f"storage:\n{storage}")
    return path


def test_upgrade_current_and_check_on_sqlite(tmp_path: Path) -> None:
    logic_yaml = config(tmp_path, "  database_url: sqlite:///var/state/tierkit.db\n")
    where = "sqlite:///var/state/tierkit.db"

    current = tierkit("db", "--config", str(logic_yaml), "current", cwd=tmp_path)
    assert (current.returncode, current.stdout) == (
        0,
        f"{where}: empty (no tierkit tables); this release's head is {HEAD}\n",
    )
    check = tierkit("db", "--config", str(logic_yaml), "check", cwd=tmp_path)
    assert check.returncode == 1
    assert "run `python -m logic_service db upgrade`" in check.stderr

    upgrade = tierkit("db", "--config", str(logic_yaml), "upgrade", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout == f"{where}: upgraded from nothing to {HEAD} (head)\n"
    # Alembic's own lines, in our format: from nothing to the baseline, then on to head
    assert "Running upgrade  -> 0001" in upgrade.stderr
    assert f"-> {HEAD}, " in upgrade.stderr
    assert (tmp_path / "var" / "state" / "tierkit.db").exists()  # relative to the working dir

    again = tierkit("db", "--config", str(logic_yaml), "upgrade", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (
        0,
        f"{where}: already at revision {HEAD} (head); nothing to do\n",
    )
    for action, expected in (("current", "at revision"), ("check", "at revision")):
        done = tierkit("db", "--config", str(logic_yaml), action, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, f"{where}: {expected} {HEAD} (head)\n")
    after = tierkit("db", "check", "--config", str(logic_yaml), cwd=tmp_path)  # like serve's
    assert (after.returncode, after.stdout) == (0, f"{where}: at revision {HEAD} (head)\n")


def test_environment_variables_configure_it_like_serve(tmp_path: Path) -> None:
    env = {"TIERKIT_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    done = tierkit("db", "upgrade", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"sqlite:///{tmp_path / 'env.db'}: upgraded from nothing")


@pytest.mark.parametrize(
    ("storage", "env", "message"),
    [
        (
            "  database_url: mysql://app:pw@db/tierkit\n",
            {},
            "storage.database_url: 'mysql://app:***@db/tierkit': 'mysql' databases are not "
            "supported; accepted: sqlite:///PATH",
        ),
        (
            "  database_url: postgresql://app@db/tierkit\n"
            "  database_password_file: /run/secrets/nowhere\n",
            {},
            "storage.database_password_file: /run/secrets/nowhere does not exist",
        ),
        (
            "  database_url: postgresql://app@db/tierkit\n",
            {"TIERKIT_STORAGE__DATABASE_PASSWORD_FILE": "/run/secrets/nowhere"},
            "storage.database_password_file: /run/secrets/nowhere does not exist",
        ),
        ("  migrate_on_startt: false\n", {}, "migrate_on_startt"),
    ],
)
def test_bad_configuration_exits_2_naming_the_setting(
    tmp_path: Path, storage: str, env: dict[str, str], message: str
) -> None:
    logic_yaml = config(tmp_path, storage)
    for action in ("upgrade", "current"):
        done = tierkit("db", "--config", str(logic_yaml), action, cwd=tmp_path, env=env)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert done.stderr.startswith("logic_service db: bad configuration: ")
        assert message in done.stderr
        assert "Traceback" not in done.stderr
        assert ":pw@" not in done.stderr


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    done = tierkit("db", "--config", str(tmp_path / "nope.yaml"), "upgrade", cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'nope.yaml'}: cannot read" in done.stderr


def test_a_refused_migration_exits_1_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    build_release_0_1_0(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE rollouts ADD COLUMN owner VARCHAR(64)")
    engine.dispose()
    done = tierkit("db", "upgrade", cwd=tmp_path, env={"TIERKIT_STORAGE__DATABASE_URL": url})
    assert done.returncode == 1
    assert "differ from release 0.1.0's schema: column rollouts.owner is not expected" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    engine = create_engine(url)
    assert "alembic_version" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_serve_refuses_a_schema_not_at_head_before_starting_uvicorn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tierkit.db'}"
    env = {"TIERKIT_STORAGE__DATABASE_URL": url, "TIERKIT_STORAGE__MIGRATE_ON_START": "false"}
    done = tierkit("serve", "--port", "0", cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"logic_service serve: failed to start: {url}: the database is empty"
    )
    assert "storage.migrate_on_start is false: run `python -m logic_service db upgrade`" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr and "Uvicorn" not in done.stderr
    bad = tierkit(
        "serve", cwd=tmp_path, env={"TIERKIT_STORAGE__DATABASE_URL": "postgres+nosuch://x@y/z"}
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "logic_service serve: failed to start: bad configuration: storage.database_url"
    )


@pytest.mark.postgres
def test_postgres_with_the_password_from_a_file(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    database = postgres_server.create_database("cli")
    url = postgres_server.url(database, password=False)
    secret = tmp_path / "db_password"
    secret.write_text(postgres_server.password + "\n")
    logic_yaml = config(tmp_path, f"  database_url: '{url}'\n")
    env = {"TIERKIT_STORAGE__DATABASE_PASSWORD_FILE": str(secret)}

    done = tierkit("db", "--config", str(logic_yaml), "upgrade", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("postgresql+psycopg://tierkit:***@/cli_")
    assert done.stdout.endswith(f"upgraded from nothing to {HEAD} (head)\n")
    assert postgres_server.password not in done.stdout + done.stderr

    current = tierkit("db", "--config", str(logic_yaml), "current", cwd=tmp_path, env=env)
    assert (current.returncode, current.stdout.split(": ", 1)[1]) == (
        0,
        f"at revision {HEAD} (head)\n",
    )

    # the file wins over a password written in the URL...
    wrong_in_url = url.replace("tierkit@", "tierkit:not-it@")
    env_url = env | {"TIERKIT_STORAGE__DATABASE_URL": wrong_in_url}
    assert tierkit("db", "check", cwd=tmp_path, env=env_url).returncode == 0
    # ...and without it the server refuses: exit 1, its reason, no password shown
    refused = tierkit(
        "db", "check", cwd=tmp_path, env={"TIERKIT_STORAGE__DATABASE_URL": wrong_in_url}
    )
    assert refused.returncode == 1
    assert 'password authentication failed for user "tierkit"' in refused.stderr
    assert "not-it" not in refused.stderr and "Traceback" not in refused.stderr
