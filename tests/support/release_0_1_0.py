"""A database as release 0.1.0 made it, for the upgrade tests (migrations, ``db`` CLI).

Built from the DDL release 0.1.0 really emitted (``data/release-0.1.0-schema.*.sql``,
captured before migrations existed), so adoption and upgrades are tested
against the real thing, not a reconstruction.
"""

from __future__ import annotations

from pathlib import Path

from logic_service.storage.database import create_engine

DATA = Path(__file__).resolve().parent / "data"
OLD_TABLES = ("predictions", "rollouts", "rollout_events", "rollout_leases")


def build_release_0_1_0(url: str, tables: tuple[str, ...] = OLD_TABLES) -> None:
    """Run release 0.1.0's DDL (only the statements of ``tables``) on an empty database."""
    engine = create_engine(url)
    ddl = (DATA / f"release-0.1.0-schema.{engine.dialect.name}.sql").read_text()
    code = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in code.split(";") if s.strip()]
    chosen = [s for s in statements if any(f" {t} " in s or f" {t}\n" in s for t in tables)]
    with engine.begin() as connection:
        for statement in chosen:
            connection.exec_driver_sql(statement)
    engine.dispose()
