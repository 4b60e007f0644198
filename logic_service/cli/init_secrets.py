"""``python -m logic_service init-secrets DIR``: the compose stack's secrets, made once.

Why generated rather than configured: `docker compose up` on a fresh clone
must work without an edit, and a default password committed to the repository
would be the same on every installation. So the stack's one-shot ``secrets``
service writes a random database password and admin token into a named volume
on the first start and keeps them on every later one; PostgreSQL reads the
password from there (``POSTGRES_PASSWORD_FILE``), the logic tier too
(``storage.database_password_file``, ``admin_token_file``). Neither value ever
appears in the compose file, an image, ``docker inspect`` or a log.

The files are world-readable inside the volume because two different users
read them (postgres, uid 999; the logic tier, uid 10001); only the services
that need them mount the volume.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

# file name -> environment variable that may preset its value on the first start
SECRETS = {"db_password": "TIERKIT_STACK_DB_PASSWORD", "admin_token": "TIERKIT_STACK_ADMIN_TOKEN"}
TOKEN_BYTES = 32


def ensure_secrets(folder: Path, preset: dict[str, str] | None = None) -> dict[str, bool]:
    """Write each missing secret atomically; keep existing ones. Returns name -> created."""
    preset = preset or {}
    folder.mkdir(parents=True, exist_ok=True)
    created = {}
    for name in SECRETS:
        path = folder / name
        if path.is_file() and path.stat().st_size > 0:
            created[name] = False
            continue
        value = preset.get(name) or secrets.token_urlsafe(TOKEN_BYTES)
        partial = folder / f".{name}.{os.getpid()}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
        try:
            os.write(fd, value.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
        created[name] = True
    return created


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m logic_service init-secrets DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    preset = {name: os.environ.get(var, "") for name, var in SECRETS.items()}
    try:
        created = ensure_secrets(folder, preset)
    except OSError as exc:
        print(f"init-secrets: cannot write {folder}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for name, new in created.items():
        print(f"init-secrets: {folder / name} {'created' if new else 'kept'}", flush=True)
    return 0
