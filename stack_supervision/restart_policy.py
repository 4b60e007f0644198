"""When a tier is restarted and when it is given up on.

Supervisor covers the start: a tier that exits within ``startsecs`` of being
started is retried after 1 s, 2 s, 3 s (``startretries``), then left FATAL.
A tier that ran longer than that and then died is restarted at once and
without limit by Supervisor; a tier that keeps doing so (out of memory under
load, a crash on some request) is as broken as one that cannot start, so the
runner counts those restarts and gives up past ``max_restarts`` within
``window_s``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Long enough for a tier to import TensorFlow/FastAPI and read its config (where
# bad settings fail); short enough that a start-up failure is told within ~30 s.
START_SECONDS = 10
START_RETRIES = 3  # so 4 attempts, 1 + 2 + 3 s apart, before FATAL
MAX_RESTARTS = 5
RESTART_WINDOW_S = 600.0
STOP_WAIT_SECONDS = 15  # SIGTERM, then SIGKILL to the tier's process group


@dataclass
class RestartWindow:
    """Restarts of one tier after it had started; too many within the window is a crash loop."""

    max_restarts: int = MAX_RESTARTS
    window_s: float = RESTART_WINDOW_S
    _times: deque[float] = field(default_factory=deque)

    def record(self, now: float) -> bool:
        """Count a restart at ``now`` (seconds); True when it is one too many for the window."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) > self.max_restarts

    @property
    def count(self) -> int:
        """Restarts within the window as of the last ``record``."""
        return len(self._times)
