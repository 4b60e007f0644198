"""``ApiError``: a failure with the HTTP status, code and message its caller should get.

Raised wherever a request learns it cannot be answered (routing, the predict
service, pinning, API versions), so it lives below all of them; ``api/errors``
turns it into the one JSON error body at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CODES_BY_STATUS = {
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
        self.code = code or CODES_BY_STATUS.get(status, "error")
        self.message = message
        self.headers = dict(headers or {})


def unknown_model(model: str, served: Iterable[str], where: str = "") -> ApiError:
    """404 for a model this tier does not serve, naming those it does (``where``: the field)."""
    listed = ", ".join(served) or "none"
    return ApiError(404, f"{where}unknown model {model!r} (served: {listed})", "unknown_model")
