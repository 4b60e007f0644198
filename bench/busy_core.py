"""The busy core of the version-load control: CPU work that shares nothing with the server.

Runs in its own spawned process at the lowest priority (SCHED_IDLE) and only
hashes a buffer, so the server it runs next to sees a busy core and nothing
else: no GIL, no memory, no files, no threads of its own.
"""

from __future__ import annotations

import hashlib
import os
import time


def burn_core(windows: int, busy: float, interval: float, start_in: float, conn) -> None:
    """Say "ready", wait ``start_in`` s, then burn one core ``busy`` s every ``interval`` s."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    block = b"x" * 4_000_000
    conn.send("ready")
    time.sleep(start_in)
    spans = []
    for _ in range(windows):
        began = time.time()
        while time.time() - began < busy:
            hashlib.sha256(block).digest()
        spans.append((began, time.time()))
        time.sleep(max(0.0, interval - (time.time() - began)))
    conn.send(spans)
