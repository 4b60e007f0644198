"""``storage.database_url`` as users write it, and the password from a file.

No database is opened here: these are the checks made before the first
connection, so a bad setting is one clear message naming it at start.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logic_service.settings import load_settings
from logic_service.storage.database_url import (
    DatabaseConfigError,
    database_url,
    masked,
    masked_text,
)


@pytest.mark.parametrize(
    "written",
    [
        "postgresql://app:s3cret@db.internal:5432/tierkit",
        "postgres://app:s3cret@db.internal:5432/tierkit",  # Heroku's form
        "postgresql+psycopg://app:s3cret@db.internal:5432/tierkit",  # explicit: kept
    ],
)
def test_postgres_urls_use_psycopg_3(written: str) -> None:
    url = database_url(written)
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        "s3cret",
        "db.internal",
        5432,
        "tierkit",
    )
    assert masked(url) == "postgresql+psycopg://app:***@db.internal:5432/tierkit"


def test_a_socket_url_keeps_its_query() -> None:
    url = database_url("postgresql://app@/tierkit?host=/run/postgresql&port=5433")
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"host": "/run/postgresql", "port": "5433"}


@pytest.mark.parametrize(
    "written", ["sqlite:///var/tierkit.db", "sqlite://", "sqlite:////abs/x.db"]
)
def test_sqlite_urls_are_unchanged(written: str) -> None:
    assert database_url(written).render_as_string(hide_password=False) == written


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("mysql://app:pw@db/tierkit", "'mysql' databases are not supported"),
        ("oracle://app:pw@db/tierkit", "'oracle' databases are not supported"),
        ("foo://app:pw@db/tierkit", "'foo' databases are not supported"),
        (
            "postgresql+psycopg2://app:pw@db/tierkit",
            "the driver postgresql+psycopg2 is not installed",
        ),
        ("postgresql+nosuch://app:pw@db/tierkit", "SQLAlchemy knows no driver 'nosuch'"),
        ("postgresql+asyncpg://app:pw@db/tierkit", "is an asyncio driver"),
        ("app:pw@db/tierkit", "is not a database URL"),
        ("", "is not a database URL"),
    ],
)
def test_other_urls_are_refused_naming_the_setting_and_what_is_accepted(
    written: str, reason: str
) -> None:
    with pytest.raises(DatabaseConfigError) as caught:
        database_url(written)
    message = str(caught.value)
    assert message.startswith("storage.database_url: ")
    assert reason in message
    assert "accepted: sqlite:///PATH" in message and "postgresql://USER" in message
    assert "pw" not in message.replace("PASSWORD", "")  # never the password


def test_the_password_file_replaces_the_urls_password(tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("from-the-file\n")  # `echo pw > file` leaves a newline
    url = database_url("postgres://app:in-the-url@db/tierkit", secret)
    assert url.password == "from-the-file"
    assert url.drivername == "postgresql+psycopg"
    assert "from-the-file" not in masked(url)
    secret.write_text("no-newline")  # Kubernetes secrets usually have none
    assert database_url("postgresql://app@db/tierkit", secret).password == "no-newline"
    secret.write_text("p@ss:w/rd?#%\r\n")  # characters a URL would need escaped
    url = database_url("postgresql://app@db/tierkit", secret)
    assert url.password == "p@ss:w/rd?#%"


def test_password_file_errors_name_the_setting_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "db_password"
    with pytest.raises(DatabaseConfigError, match=r"^storage.database_password_file: .*") as one:
        database_url("postgresql://app@db/tierkit", missing)
    assert f"{missing} does not exist" in str(one.value)

    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(DatabaseConfigError, match=r"storage\.database_password_file: .* is empty"):
        database_url("postgresql://app@db/tierkit", empty)

    with pytest.raises(DatabaseConfigError, match=r"storage\.database_password_file: cannot read"):
        database_url("postgresql://app@db/tierkit", tmp_path)  # a folder

    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00pw")
    with pytest.raises(DatabaseConfigError, match=r"storage\.database_password_file: cannot read"):
        database_url("postgresql://app@db/tierkit", binary)

    with pytest.raises(DatabaseConfigError, match="SQLite has no password"):
        database_url("sqlite:///x.db", empty)


def test_masked_text_hides_a_password_even_in_an_unparsable_url() -> None:
    assert masked_text("postgresql://app:s3cret@db/x") == "postgresql://app:***@db/x"
    assert "s3cret" not in masked_text("weird://app:s3cret@@db/x?%%")
    assert masked_text("app:s3cret@db/x") == "app:***@db/x"
    assert masked_text("no-url-at-all") == "no-url-at-all"


def test_settings_take_the_password_file_and_migrate_flag_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("TIERKIT_")]:
        monkeypatch.delenv(key)
    defaults = load_settings().storage
    assert (defaults.database_password_file, defaults.migrate_on_start) == (None, True)
    monkeypatch.setenv("TIERKIT_STORAGE__DATABASE_PASSWORD_FILE", "/run/secrets/db_password")
    monkeypatch.setenv("TIERKIT_STORAGE__MIGRATE_ON_START", "false")
    storage = load_settings().storage
    assert storage.database_password_file == Path("/run/secrets/db_password")
    assert storage.migrate_on_start is False
    monkeypatch.setenv("TIERKIT_STORAGE__DATABASE_PASSWORD_FILE", "")  # compose's ${X:-}
    assert load_settings().storage.database_password_file is None
