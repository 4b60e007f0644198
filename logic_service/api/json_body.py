"""Reading a request body as JSON and writing a JSON answer: the rules every endpoint shares.

Every router answers through ``json_response`` (orjson, numpy values as
numbers). Callers' bodies (predict of every API version, feedback) go
through ``read_json_body``: size, Content-Type and shape limits, 400 for
unparsable JSON. The admin API's small optional bodies (a reason, a rollout
spec) go through ``read_small_json``: size and JSON only, empty means none,
because the CLI and curl send what they send. Apart from the app and the
routers, so every router reads the same rules without importing another.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from logic_service.api.body_limits import check_body_shape
from logic_service.errors import ApiError
from logic_service.settings import LimitSettings

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


async def read_json_body(request: Request, limits: LimitSettings) -> Any:
    """The body as JSON; oversized is 413, a non-JSON type 415, unparsable JSON 400.

    Then its shape: nesting depth and string length (``body_limits``), 413.
    """
    limit = limits.max_body_bytes
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
    check_body_shape(body, limits.max_depth, limits.max_string_chars)
    return body


async def read_small_json(request: Request, limit: int) -> Any:
    """An admin call's optional body as JSON, None when empty; oversized 413, unparsable 400."""
    raw = await request.body()
    if len(raw) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}", "invalid_json") from exc
