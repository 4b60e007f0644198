"""The body of one racing process: open an engine, wait at the barrier, upgrade.

A module of its own so ``multiprocessing``'s spawn start method can import it
in the child (the tests' sys.path travels with it); spawned, not forked, so
each child is a fresh interpreter like a uvicorn worker or a replica.
"""

from __future__ import annotations

import os
from typing import Any


def upgrade_at_the_barrier(url: str, barrier: Any, results: Any) -> None:
    """Put ``("ok", pid, revision before, revision after)`` or ``("error", pid, message)``."""
    from logic_service.storage.database import create_engine
    from logic_service.storage.migrations import runner

    engine = create_engine(url)
    try:
        barrier.wait(timeout=120)  # everyone imported and ready: go at the same moment
        result = runner.upgrade(engine)
        results.put(("ok", os.getpid(), result.before.revision, result.after.revision))
    except Exception as exc:  # reported to the test, which names it
        results.put(("error", os.getpid(), f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()
