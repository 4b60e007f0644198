"""The one error shape of the logic tier: ``{"error": {"code", "message", "request_id"}}``.

Every answer that is not a success goes through ``error_response``: our own
``ApiError``s (``logic_service.errors``, raised at any depth), FastAPI's request
validation, Starlette's 404/405, and (from the request middleware) true bugs,
so a client parses a single format and always gets the request id to quote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from logic_service.errors import CODES_BY_STATUS, ApiError
from logic_service.observability.logs import request_id_var


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "request_id": request_id_var.get()}}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def field_problems(errors: Iterable[Mapping[str, Any]], root: str = "<body>") -> str:
    """``where: rule; ...`` of every error pydantic reports: how a 422 names the fields."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or root}: {e.get('msg')}" for e in errors
    )


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs"
        code = CODES_BY_STATUS.get(exc.status_code, "error")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return error_response(422, "invalid_input", field_problems(exc.errors(), "<request>"))

    app.add_exception_handler(ApiError, api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
