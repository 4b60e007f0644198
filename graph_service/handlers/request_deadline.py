"""The deadline of the request being served, from the front end to the session run.

TF Serving passes the caller's deadline to ``Session::Run`` as
``RunOptions.timeout_in_ms`` (``--enforce_session_run_timeout``, on by default),
so a run the caller gave up on is cancelled instead of burning a core that the
requests of other models need. Here the gRPC front end takes it from the call
(``time_remaining()``) and the REST front end from ``--rest_api_timeout_in_ms``;
ServerCore reads it where the run is prepared. A context variable carries it so
the API between front ends and core stays TF Serving's request protos.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("graph_request_deadline", default=None)


class deadline_in:  # lower case: read as ``with deadline_in(seconds):``
    """Requests served inside this block must finish within ``seconds`` (None: no limit).

    A class rather than ``contextlib.contextmanager``: every gRPC request enters
    one, and a generator-based manager costs several times more per request.
    """

    __slots__ = ("_seconds", "_token")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        seconds = self._seconds
        deadline = None if seconds is None else time.monotonic() + max(seconds, 0.0)
        self._token = _deadline.set(deadline)

    def __exit__(self, *exc: object) -> None:
        _deadline.reset(self._token)


def current_deadline() -> float | None:
    """The ``time.monotonic()`` by which the current request must be answered, if any."""
    return _deadline.get()
