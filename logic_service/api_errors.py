"""The one error shape of the logic tier: ``{"error": {"code", "message", "request_id"}}``.

Every answer that is not a success goes through ``error_response``: our own
``ApiError``s, FastAPI's request validation, Starlette's 404/405, and (from the
request middleware) true bugs, so a client parses a single format and always
gets the request id to quote.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from logic_service.log_setup import request_id_var

_CODES_BY_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    500: "internal",
    502: "bad_graph_answer",
    503: "unavailable",
    504: "graph_timeout",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES_BY_STATUS.get(status, "error")
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "request_id": request_id_var.get()}}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs"
        code = _CODES_BY_STATUS.get(exc.status_code, "error")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())) or '<request>'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return error_response(422, "invalid_input", "; ".join(problems))

    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
