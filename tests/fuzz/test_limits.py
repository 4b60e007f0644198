"""Request limits, each configured small on a real logic tier: size 413, records 413, shape 422."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.fault_stack import CTR, EXAMPLE, Logic, Stack, start_logic_tier

from .test_logic_openapi import check_answer

LIMITS = {
    "TIERKIT_LIMITS__MAX_BODY_BYTES": "4096",
    "TIERKIT_LIMITS__MAX_RECORDS": "3",
    "TIERKIT_LIMITS__MAX_DEPTH": "4",
    "TIERKIT_LIMITS__MAX_STRING_CHARS": "64",
}


@pytest.fixture(scope="module")
def small(stack: Stack) -> Iterator[Logic]:
    tier = start_logic_tier(stack, env=LIMITS, name="small-limits")
    yield tier
    tier.stop()


def _refused(response: httpx.Response, status: int, code: str, *words: str) -> None:
    check_answer(response, "limits")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


def test_each_limit_is_enforced_and_named(small: Logic) -> None:
    url = f"{small.url}/v1/models/{CTR}/predict"
    assert httpx.post(url, json={"records": [EXAMPLE] * 3}, timeout=10).status_code == 200
    _refused(
        httpx.post(url, json={"records": [EXAMPLE] * 4}, timeout=10),
        413,
        "too_many_records",
        "records",
        "at most 3",
    )
    _refused(
        httpx.post(url, content=b'{"userId": 1, "pad": "' + b"x" * 5000 + b'"}', timeout=10),
        413,
        "payload_too_large",
        "4096",
    )
    # chunked (no Content-Length): counted while streaming
    chunks = iter([b'{"userId": 1, "pad": "', b"y" * 3000, b"y" * 3000, b'"}'])
    _refused(httpx.post(url, content=chunks, timeout=10), 413, "payload_too_large")
    _refused(
        httpx.post(url, json=EXAMPLE | {"deviceName": "d" * 65}, timeout=10),
        422,
        "limit_exceeded",
        "deviceName",
        "max_string_chars",
    )
    _refused(
        httpx.post(url, json=EXAMPLE | {"k" * 65: 1}, timeout=10),
        422,
        "limit_exceeded",
        "key",
    )
    _refused(
        httpx.post(url, json={"records": [EXAMPLE | {"extra": [[[1]]]}]}, timeout=10),
        422,
        "limit_exceeded",
        "records[0].extra",
        "max_depth",
    )
    # the same limits guard feedback
    feedback = f"{small.url}/v1/feedback"
    _refused(
        httpx.post(feedback, json={"request_id": "r" * 65, "label": 1}, timeout=10),
        422,
        "limit_exceeded",
        "request_id",
    )


def test_defaults_accept_what_the_demo_sends(logic: Logic) -> None:
    url = f"{logic.url}/v1/models/{CTR}/predict"
    assert httpx.post(url, json={"records": [EXAMPLE] * 100}, timeout=20).status_code == 200
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    _refused(httpx.post(url, json=EXAMPLE | {"x": deep}, timeout=10), 422, "limit_exceeded")
