"""The outermost layer of every request: id, timing headers, the log line, metrics, last resort.

A pure ASGI middleware (no ``BaseHTTPMiddleware``: that one costs a task and
a queue per request). It also catches what nothing else did: a bug answers
500 with the JSON error body and its traceback goes to the log with the
request id, instead of Starlette's plain-text 500.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from logic_service.api.errors import error_response
from logic_service.observability.logs import request_id_var
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import (
    RequestContext,
    accept_request_id,
    request_context_var,
)

log = logging.getLogger("logic_service.requests")

# Probes and scrapes would drown the request log; they log at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get("x-request-id"))
        context = RequestContext(request_id)
        id_token = request_id_var.set(request_id)
        context_token = request_context_var.set(context)
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["Server-Timing"] = context.server_timing()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                response = error_response(
                    500, "internal", f"internal error; quote request id {request_id}"
                )
                await response(scope, receive, send_with_headers)
        finally:
            self._account(scope, context, status)
            request_context_var.reset(context_token)
            request_id_var.reset(id_token)

    def _account(self, scope: Scope, context: RequestContext, status: int) -> None:
        latency = context.elapsed()
        path = scope.get("path", "")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "%s %s model=%s version=%s status=%d latency_ms=%.3f",
                scope.get("method"),
                path,
                context.model or "-",
                _version_text(context),
                status,
                latency * 1000,
            )
        if context.model is None or context.log_only:
            return
        version = str(context.version) if context.version is not None else ""
        labels = (context.model, version, str(status))
        self.metrics.requests.labels(context.model, version, context.arm or "", str(status)).inc()
        if context.api_version is not None:
            api = (context.model, context.api_version, version, str(status))
            self.metrics.api_requests.labels(*api).inc()
        self.metrics.latency.labels(*labels).observe(latency)


def _version_text(context: RequestContext) -> str:
    if context.version is not None:
        return str(context.version)
    return "all" if context.log_only and context.model else "-"
