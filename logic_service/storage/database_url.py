"""From ``storage.database_url`` as users write it to the URL SQLAlchemy opens.

Users write ``postgresql://user:pw@host:5432/db`` (or Heroku's
``postgres://...``). SQLAlchemy would pick the psycopg2 driver for that (2.0)
or refuse ``postgres`` altogether, while tierkit ships psycopg 3: both forms
are mapped to ``postgresql+psycopg``. An explicit driver is kept when it is
installed; anything else is refused here, at start, with a message naming the
setting and what is accepted, rather than as a stack trace from the first query.

The password may come from ``storage.database_password_file`` (compose and
Kubernetes secrets are files): its content replaces any password in the URL,
so no password ever sits in a compose file or an environment variable. URLs
are only ever logged through ``masked``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

URL_SETTING = "storage.database_url"
PASSWORD_FILE_SETTING = "storage.database_password_file"
POSTGRES_DRIVER = "postgresql+psycopg"
# Schemes users write for PostgreSQL that mean "the driver tierkit ships".
POSTGRES_ALIASES = ("postgresql", "postgres")
BACKENDS = ("sqlite", "postgresql")
ACCEPTED = (
    "sqlite:///PATH (relative to the working directory), sqlite:////ABSOLUTE/PATH, "
    "sqlite:// (in memory), postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE "
    "(also postgres://, postgresql+psycopg://)"
)


class DatabaseConfigError(ValueError):
    """A database setting that cannot work; the message names the setting and the rule."""


def database_url(url: str, password_file: Path | None = None) -> URL:
    """``url`` with the driver tierkit ships and the password from ``password_file``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseConfigError(
            f"{URL_SETTING}: {masked_text(url)!r} is not a database URL; accepted: {ACCEPTED}"
        ) from None
    if parsed.drivername in POSTGRES_ALIASES:
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    _check_driver(parsed)
    if password_file is not None:
        if parsed.get_backend_name() == "sqlite":
            raise DatabaseConfigError(
                f"{PASSWORD_FILE_SETTING}: set to {password_file}, but SQLite has no "
                "password; unset it or use a postgresql:// URL"
            )
        parsed = parsed.set(password=read_password(password_file))
    return parsed


def read_password(path: Path) -> str:
    """The file's content without its trailing newline (``echo pw > file`` adds one)."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatabaseConfigError(f"{PASSWORD_FILE_SETTING}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatabaseConfigError(
            f"{PASSWORD_FILE_SETTING}: cannot read {path}: {reason}"
        ) from None
    password = text.rstrip("\r\n")
    if not password:
        raise DatabaseConfigError(f"{PASSWORD_FILE_SETTING}: {path} is empty")
    return password


def masked(url: URL) -> str:
    """The URL for logs and messages: the password shown as ``***``."""
    return url.render_as_string(hide_password=True)


def masked_text(url: str) -> str:
    """A URL string that may not even parse, with anything password-like hidden."""
    try:
        return masked(make_url(url))
    except ArgumentError:
        scheme, sep, rest = url.rpartition("://")
        if "@" not in rest:
            return url
        credentials, _, host = rest.rpartition("@")
        if ":" not in credentials:
            return url
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"


def _check_driver(url: URL) -> None:
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise DatabaseConfigError(
            f"{URL_SETTING}: {masked(url)!r}: {backend!r} databases are not supported; "
            f"accepted: {ACCEPTED}"
        )
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise DatabaseConfigError(
            f"{URL_SETTING}: {masked(url)!r}: SQLAlchemy knows no driver "
            f"{url.get_driver_name()!r} for {backend}; accepted: {ACCEPTED}"
        ) from None
    if getattr(dialect, "is_async", False):
        raise DatabaseConfigError(
            f"{URL_SETTING}: {masked(url)!r}: {url.drivername} is an asyncio driver; the "
            f"logic tier writes from threads with a synchronous one; accepted: {ACCEPTED}"
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise DatabaseConfigError(
            f"{URL_SETTING}: {masked(url)!r}: the driver {url.drivername} is not installed "
            f"({exc}); accepted: {ACCEPTED}"
        ) from None
