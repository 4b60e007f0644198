"""One API call observed: its metrics, the count of calls in flight, and INTERNAL for bugs.

Every public ServerCore method raises only ``ServingError``; an unexpected
exception becomes INTERNAL with a short message and is logged with its traceback
here. The count of calls in flight tells a loading version when to pause its
Python work (cpu/load_pacing.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from graph_service.errors import ServingError
from graph_service.monitoring import Metrics
from graph_service.runtime.trace_events import traced

log = logging.getLogger("graph_service")


class Calls:
    """What every Observation of one ServerCore shares (touched on the event loop only)."""

    __slots__ = ("in_flight", "metrics")

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        # Calls between an Observation's enter and exit.
        self.in_flight = 0


def internal_error(api: str, exc: BaseException) -> ServingError:
    """An unexpected exception as INTERNAL, logged with its traceback."""
    log.error("%s failed with an unexpected error", api, exc_info=exc)
    return ServingError(
        grpc.StatusCode.INTERNAL, f"Internal error in {api}: {type(exc).__name__}: {exc}"
    )


class Observation:
    """One API call's metrics; turns an unexpected exception into INTERNAL.

    A context manager rather than a wrapping coroutine, so the request path
    awaits no extra frame for it.
    """

    __slots__ = ("api", "calls", "model_name", "span", "started", "version")

    def __init__(self, calls: Calls, api: str, model_name: str) -> None:
        self.calls = calls
        self.api = api
        self.model_name = model_name
        self.version: int | None = None  # the version that served, once acquired

    def __enter__(self) -> Observation:
        self.started = time.perf_counter()
        self.calls.in_flight += 1
        # The call as a span of TF's profiler trace while one is taken (trace_events.py).
        self.span = traced(self.api, model=self.model_name)
        self.span.__enter__()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.span.__exit__(exc_type, exc, traceback)
        self.calls.in_flight -= 1
        if exc is None:
            status = "OK"
        elif isinstance(exc, ServingError):
            status = exc.code.name
        elif isinstance(exc, asyncio.CancelledError):
            status = "CANCELLED"
        else:
            status = "INTERNAL"
        metrics = self.calls.metrics
        if metrics is not None:
            metrics.observe_request(
                self.api, self.model_name, self.version, status, time.perf_counter() - self.started
            )
        if isinstance(exc, Exception) and not isinstance(exc, ServingError):
            raise internal_error(self.api, exc) from None
