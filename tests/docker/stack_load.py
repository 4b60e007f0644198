"""A bounded request loop through the stack's nginx, keeping every outcome.

The fault tests (a replica killed, the graph tier killed, PostgreSQL
restarted) need load running while the fault happens and an exact account
afterwards: which requests failed, how, how long each took, and which request
ids answered 2xx (to find them in the prediction log).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import httpx

from logic_service.features.ctr import EXAMPLE_REQUEST

MAX_REQUESTS = 20_000  # a loop never runs away, whatever the test forgets


@dataclass(frozen=True)
class Outcome:
    request_id: str
    started: float  # time.monotonic()
    elapsed_s: float
    status: int  # 0: no HTTP answer at all
    version: int | None
    retry_after: str | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == 200


class LoadLoop:
    """``concurrency`` threads sending the demo predict until ``stop()`` (or MAX_REQUESTS)."""

    def __init__(
        self,
        base_url: str,
        prefix: str,
        *,
        concurrency: int = 4,
        pause_s: float = 0.0,
        timeout_s: float = 15.0,
    ) -> None:
        self.url = f"{base_url}/v1/models/ctr/predict"
        self.prefix = prefix
        self.concurrency = concurrency
        self.pause_s = pause_s
        self.timeout_s = timeout_s
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoadLoop:
        for n in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def count(self) -> int:
        with self._lock:
            return len(self._outcomes)

    def wait_for(self, requests: int, limit_s: float) -> None:
        """Block until ``requests`` more outcomes are in, or ``limit_s`` passed."""
        target = self.count() + requests
        deadline = time.monotonic() + limit_s
        while self.count() < target and time.monotonic() < deadline:
            time.sleep(0.05)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                number = next(self._ids)
                if number >= MAX_REQUESTS:
                    return
                self._record(client, f"{self.prefix}-{number}")
                if self.pause_s:
                    time.sleep(self.pause_s)

    def _record(self, client: httpx.Client, request_id: str) -> None:
        started = time.monotonic()
        try:
            answer = client.post(
                self.url, json=EXAMPLE_REQUEST, headers={"X-Request-ID": request_id}
            )
        except httpx.HTTPError as exc:
            outcome = Outcome(
                request_id, started, time.monotonic() - started, 0, None, None, repr(exc)
            )
        else:
            version = None
            if answer.status_code == 200:
                version = answer.json().get("version")
            outcome = Outcome(
                request_id,
                started,
                time.monotonic() - started,
                answer.status_code,
                version,
                answer.headers.get("retry-after"),
                "" if answer.status_code == 200 else answer.text[:300],
            )
        with self._lock:
            self._outcomes.append(outcome)
