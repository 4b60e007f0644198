"""The graph tier's first config, written before it starts (``./scripts/up``).

The graph tier starts before the logic tier, so the keeper cannot have written
the effective file yet on a fresh start. ``seed_effective_file`` writes it from
the user's models.config and, when the logic tier's database already holds a
rollout or pins (a restart in the middle of a canary), with those versions
pinned: both stay loaded from the graph tier's first second; so does the newest
version of each live request API (``api_use``). A database that
is not there yet (or not readable) means nothing is in use.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from logic_service.pinning.api_use import ApiContext
from logic_service.pinning.models_config import (
    ConfigUnreadable,
    read_user_config,
    write_atomically,
)
from logic_service.pinning.pins import PinStore
from logic_service.pinning.plan import plan_effective
from logic_service.storage.database_url import DatabaseConfigError
from logic_service.storage.rollout_state import RolloutStore

log = logging.getLogger(__name__)


def effective_at_start(
    models_config: Path,
    database_url: str,
    stable_label: str,
    apis: ApiContext | None = None,
    repository: Path | None = None,
) -> bytes:
    """The effective config from the database as it is, else the user's file as it is.

    A models.config that does not parse is passed on byte for byte: the graph
    tier then refuses it in its own words. Raises OSError when it cannot be read.
    """
    from logic_service.storage.database import create_engine

    text = models_config.read_bytes()
    try:
        read_user_config(models_config)
        engine = create_engine(database_url)
    except (ConfigUnreadable, DatabaseConfigError):
        return text
    try:
        plan = plan_effective(
            models_config, RolloutStore(engine), PinStore(engine), stable_label, apis, repository
        )
        return plan.effective.text
    except ConfigUnreadable:
        return text
    except SQLAlchemyError as exc:  # no tables yet: the logic tier migrates at its start
        log.info("no versions in use read from the database (%s)", type(exc).__name__)
        return text
    finally:
        engine.dispose()


def seed_effective_file(
    models_config: Path,
    effective_file: Path,
    database_url: str,
    stable_label: str = "stable",
    apis: ApiContext | None = None,
    repository: Path | None = None,
) -> bytes:
    """Write the effective file (atomically, only when it changes); its content.

    ``repository``: its model folders not in models.config are served from the start.
    """
    text = effective_at_start(models_config, database_url, stable_label, apis, repository)
    try:
        current = effective_file.read_bytes()
    except OSError:
        current = None
    if current != text:
        write_atomically(effective_file, text)
    return text
