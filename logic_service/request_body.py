"""Reading a request body as JSON and writing a JSON answer: the rules every endpoint shares.

Apart from ``app`` so the predict routes of every API version
(``api_routes``) and the feedback endpoint apply the same size, type and
shape limits without importing the app that includes them.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from logic_service.api_errors import ApiError
from logic_service.request_limits import check_body_shape
from logic_service.settings import LogicSettings

JSON_TYPES = ("application/json",)
# curl -d sends this unless told otherwise; such bodies are still parsed as JSON.
LENIENT_TYPES = ("application/x-www-form-urlencoded",)


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def read_json_body(request: Request, limit: int) -> Any:
    """The body as JSON; oversized is 413, a non-JSON type 415, unparsable JSON 400."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and not (
        content_type in JSON_TYPES
        or content_type.endswith("+json")
        or content_type in LENIENT_TYPES
    ):
        raise ApiError(415, f"Content-Type must be application/json, got {content_type}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes, at most {limit} accepted")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(
            400, 'empty body: send one JSON record or {"records": [...]}', "invalid_json"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", "invalid_json") from exc
    app_settings: LogicSettings | None = getattr(request.app.state, "settings", None)
    if app_settings is not None:
        limits = app_settings.limits
        check_body_shape(body, limits.max_depth, limits.max_string_chars)
    return body
