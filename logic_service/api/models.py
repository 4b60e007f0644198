"""Request and response shapes as documented in ``/docs``.

Answers are written with orjson directly (no pydantic round trip per
request), so these models describe the wire format for OpenAPI and clients;
the request body is documented by hand because its schema is per model
version (from the manifest), not fixed at build time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from logic_service.features.ctr import EXAMPLE_REQUEST


class PredictResponse(BaseModel):
    request_id: str = Field(description="Echoes X-Request-ID, or the id made for this request.")
    model: str
    version: int = Field(description="The model version that served this request.")
    prediction: dict[str, Any] | None = Field(
        None, description="For a single record: the signature's outputs by name."
    )
    predictions: list[dict[str, Any]] | None = Field(
        None, description='For {"records": [...]}: one object per record, in order.'
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "request_id": "3f2a9c0e6f1b4e8f9d7c5a3b1e0f2d4c",
                    "model": "ctr",
                    "version": 1795321077,
                    "prediction": {"score": 0.0731},
                }
            ]
        }
    }


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_input.")
    message: str = Field(description="What is wrong, naming the field and the rule.")
    request_id: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class HealthResponse(BaseModel):
    status: str = "ok"


class ReadyResponse(BaseModel):
    status: str = "ready"
    models: dict[str, Any]
    prediction_log: dict[str, Any] = Field(
        default_factory=dict,
        description="The log writer of this worker: state (writing, replaying, "
        "database_unavailable, spill_full), queue depth, spill bytes and row counts.",
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "The body is not JSON.",
        404: "Unknown model.",
        413: "Body or record count over the configured limit.",
        415: "Content-Type is not JSON.",
        422: "A record breaks the version's input schema (the message names field and rule).",
        502: "The graph tier gave an unusable answer.",
        503: "The graph tier is unreachable or has no version ready (see Retry-After).",
        504: "The graph tier exceeded the deadline.",
    }.items()
}

PREDICT_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "title": "one raw record",
                        "description": "Validated against the serving version's input schema.",
                        "additionalProperties": True,
                    },
                    {
                        "type": "object",
                        "title": "a batch",
                        "required": ["records"],
                        "properties": {
                            "records": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                ]
            },
            "examples": {
                "ctr": {"summary": "demo ctr model: one record", "value": EXAMPLE_REQUEST},
                "ctr-batch": {
                    "summary": "demo ctr model: a batch",
                    "value": {"records": [EXAMPLE_REQUEST, EXAMPLE_REQUEST]},
                },
            },
        }
    },
}
