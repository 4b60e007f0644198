"""OS-level thread names, so ``top -H``, py-spy and /proc tell the server's threads apart.

Python names its threads only for itself; every one shows as "python" to the OS.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

PR_SET_NAME = 15


def name_os_thread(name: str | None = None) -> None:
    """Give the calling OS thread ``name`` (default: its Python name), up to 15 bytes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_NAME, (name or threading.current_thread().name).encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def process_thread_ids() -> list[int]:
    """The OS thread ids of this process now (empty where /proc is missing)."""
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return []
