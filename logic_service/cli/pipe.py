"""Client commands whose output goes into a pipe that closes early end quietly.

``python -m logic_service rollout status ctr | head -3``: once ``head`` has
its lines and exits, the next write to stdout raises ``BrokenPipeError``, and
Python printed a traceback for it (and another when it flushed stdout at
exit). A well-behaved command-line tool stops writing and exits the way a
writer killed by SIGPIPE does, status 141, with nothing on stderr. Only the
client commands (``rollout``, ``api``, ``db``) are wrapped: the server never
restores SIGPIPE's default action, so a client closing its socket cannot kill
it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


def quiet_on_broken_pipe(command: Callable[[], int]) -> int:
    """Run ``command``; if stdout's reader went away, exit 141 without a traceback."""
    try:
        code = command()
        sys.stdout.flush()  # inside the guard: a late flush may be the write that fails
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's own flush at exit stays quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code
