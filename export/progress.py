"""Progress lines on stderr for the slow steps of an export.

Loading TensorFlow and converting a model take seconds; a line per step tells
the user what is happening without mixing into stdout, which carries only the
result (the published path, the inspection, the JSON).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Writes ``[export] <step>`` lines unless quiet, with the elapsed time."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream
        self._started = time.monotonic()

    def step(self, message: str) -> None:
        if self.quiet:
            return
        stream = self._stream or sys.stderr
        elapsed = time.monotonic() - self._started
        print(f"[export {elapsed:5.1f}s] {message}", file=stream, flush=True)
