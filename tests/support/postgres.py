"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` on a Unix socket in a tmp dir.

One server per test session (``tests/logic/conftest.py``), one fresh database
per test that needs one, so tests never see each other's tables. The server
listens on no TCP port. PostgreSQL refuses to run as root, so under root it
runs as the ``postgres`` user. Authentication is real: the superuser
``tierkit`` has a password (in ``password_file``, the way compose and
Kubernetes hand secrets over) and the socket asks for it (SCRAM), so a test
that passes the wrong password, or none, sees the server refuse.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

USER = "tierkit"
PORT = 5432  # only names the socket file (.s.PGSQL.5432): no TCP listener


class PostgresUnavailable(RuntimeError):
    """This machine cannot run the server (no binaries, no account to run it as)."""


def server_binaries() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's newest /usr/lib/postgresql/N."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


@dataclass(frozen=True)
class PostgresServer:
    socket_dir: Path
    password_file: Path  # the superuser's password, newline-terminated like `echo pw > file`
    # pg_ctl with its data folder and options: stop() and start() the server (an outage)
    pg_ctl: tuple[str, ...] = ()
    start_options: tuple[str, ...] = ()

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``): clients see it gone, as in a crash."""
        subprocess.run(
            [*self.pg_ctl, "-m", "immediate", "-w", "stop"],
            check=True, capture_output=True, timeout=60, cwd=self.socket_dir,
        )  # fmt: skip

    def start(self) -> None:
        """Start it again on the same data, socket and password."""
        subprocess.run(
            [*self.pg_ctl, *self.start_options, "-w", "-t", "30", "start"],
            check=True, capture_output=True, timeout=60, cwd=self.socket_dir,
        )  # fmt: skip

    @property
    def password(self) -> str:
        return self.password_file.read_text().rstrip("\n")

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A ``postgresql://`` URL as users write it (the password in it, or not)."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@/{database}?host={self.socket_dir}&port={PORT}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        engine = sa.create_engine(
            self.url().replace("postgresql://", "postgresql+psycopg://", 1),
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return name


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """Start a server, yield it, stop it and delete its files."""
    bin_dir = server_binaries()
    if bin_dir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) installed")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="tierkit-pg-"))
    password_file = base / "password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailable(
                "running as root and no postgres user to run the server as"
            ) from None
        for path in (base, password_file):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"

    def run(*argv: str | Path) -> None:
        subprocess.run(
            [*as_user, *map(str, argv)], check=True, capture_output=True, timeout=60, cwd=base
        )

    try:
        run(
            bin_dir / "initdb", "-D", data, "-U", USER, "--pwfile", password_file,
            "-A", "scram-sha-256", "--no-sync",
        )  # fmt: skip
        options = f"-k {base} -c listen_addresses='' -c fsync=off -p {PORT}"
        # -l: the server must not inherit our pipes, or run() would wait for it to exit
        log = base / "server.log"
        run(bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "30", "start")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    control = (*as_user, str(bin_dir / "pg_ctl"), "-D", str(data))
    try:
        yield PostgresServer(base, password_file, control, ("-o", options, "-l", str(log)))
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)
