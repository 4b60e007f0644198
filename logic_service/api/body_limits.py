"""Shape limits on a parsed JSON body: nesting depth and string length.

The body-size limit (413) bounds bytes, but one megabyte can still be a
string the feature code copies many times, or thousands of nested arrays that
make every recursive validator and encoder downstream pay per level. These
checks run once, iteratively (no recursion an attacker can exhaust), right
after parsing and before any schema or feature code sees the body.
"""

from __future__ import annotations

from typing import Any

from logic_service.errors import ApiError


def _where(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<body>"


def check_body_shape(body: Any, max_depth: int, max_string_chars: int) -> None:
    """422 naming the first field nested deeper than ``max_depth`` or longer than allowed."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(body, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if len(value) > max_string_chars:
                raise ApiError(
                    422,
                    f"{_where(path)}: string of {len(value)} characters, "
                    f"at most {max_string_chars} accepted (limits.max_string_chars)",
                    "limit_exceeded",
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= max_depth:
            raise ApiError(
                422,
                f"{_where(path)}: nested deeper than {max_depth} levels (limits.max_depth)",
                "limit_exceeded",
            )
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > max_string_chars:
                    raise ApiError(
                        422,
                        f"{_where(path)}: a key of {len(key)} characters, "
                        f"at most {max_string_chars} accepted (limits.max_string_chars)",
                        "limit_exceeded",
                    )
                stack.append((item, depth + 1, (*path, key)))
        else:
            stack.extend((item, depth + 1, (*path, i)) for i, item in enumerate(value))
