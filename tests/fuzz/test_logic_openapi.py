"""schemathesis over the logic tier's own ``/openapi.json``: no 5xx, every 4xx our error body.

Every operation gets a fixed budget of generated requests, valid ones
(positive) and invalid ones (negative: wrong types, missing fields, bad
paths), so the run is bounded in time and request count. Requests go to a
real logic tier on loopback over a real graph tier. (The strategies are driven
by hypothesis directly: schemathesis' pytest loader does not run on pytest 9.)
"""

from __future__ import annotations

from collections import Counter

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from support.fault_stack import CTR, PLAIN, SLOW, Logic

EXAMPLES_PER_OPERATION_AND_MODE = 120


def header(response, name: str) -> str:
    """One header value, from httpx (a string) or schemathesis (a list of strings)."""
    value = response.headers.get(name, "")
    return value[0] if isinstance(value, list) and value else str(value or "")


def check_answer(response, where: str) -> None:
    """No 5xx, no traceback; a 4xx is JSON ``{"error": {code, message, request_id}}``."""
    status = response.status_code
    assert status < 500, (where, response.text)
    assert "Traceback" not in response.text and 'File "' not in response.text
    if 400 <= status < 500:
        assert header(response, "content-type").startswith("application/json"), response.text
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], response.text
        assert isinstance(error["message"], str) and error["message"], response.text
        assert error["request_id"] == header(response, "x-request-id")


def fuzz_operation(operation, mode: GenerationMode, base_url: str, tally: Counter) -> None:
    """Run one operation's budget of generated requests in one generation mode."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case) -> None:
        response = case.call(base_url=base_url, timeout=10)
        tally[f"{mode.value} {response.status_code}"] += 1
        check_answer(response, case.as_curl_command())

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        tally["negative: nothing to negate (no parameters or body)"] += 1


def test_no_generated_request_is_a_server_error(logic: Logic, tally: Counter) -> None:
    schema = schemathesis.openapi.from_url(f"{logic.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # predict, feedback, evaluation, admin, probes, metrics
    # each served model's own path is documented with its record schema (docs/predict.md)
    paths = {operation.path for operation in operations}
    assert {f"/v1/models/{m}/predict" for m in (CTR, PLAIN)} <= paths, sorted(paths)
    # The slow model's record is how many seconds to busy-wait: a valid one past its
    # 1 s deadline is a 504 by design (tests/reliability), not a server error.
    operations = [o for o in operations if o.path != f"/v1/models/{SLOW}/predict"]
    for operation in operations:
        for mode in GenerationMode:
            fuzz_operation(operation, mode, logic.url, tally)
    assert httpx.get(f"{logic.url}/healthz", timeout=5).status_code == 200
