"""Trace events for TensorFlow's profiler (``TraceMe``), free while nobody profiles.

TF Serving's C++ code marks what it does with ``TraceMe`` (requests, the file
system poll), so a trace taken through ProfilerService (api/profiler_service.py)
shows the server's own work beside TensorFlow's ops. The same marks here:
``traced(name)`` is a no-op context (one C call to ask whether a profiling session
is active) unless one is, and then records a span on the calling thread.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tensorflow.python.profiler.internal import _pywrap_traceme

_active = _pywrap_traceme.traceme_enabled


class _Span:
    __slots__ = ("_traceme",)

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self._traceme = _pywrap_traceme.TraceMe(name, **attributes)  # starts the clock

    def __enter__(self) -> _Span:
        return self

    def __exit__(self, *exc: object) -> None:
        self._traceme.Stop()


def traced(name: str, **attributes: Any) -> contextlib.AbstractContextManager:
    """A span named ``name`` in the profiler's trace, if a profiling session is active."""
    if not _active():
        return contextlib.nullcontext()
    return _Span(name, attributes)
