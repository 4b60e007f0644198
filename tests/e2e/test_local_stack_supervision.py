"""./scripts/up supervises its tiers: a killed tier comes back, a crash loop ends the run.

Real processes and a real model: the runner (scripts/local_stack.py) on free
loopback ports, a client loop against the logic tier while the graph tier is
SIGKILLed, then Ctrl-C; and a graph tier that cannot start at all.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support.graph_tier import GraphTier
from support.waiting import wait_until

from logic_service.features import ctr

from .local_stack_run import LocalStackRun, start_local_stack
from .process_tree import alive, descendants
from .stack import MODEL

BACK_WITHIN_S = 30.0  # a SIGKILLed graph tier serves again within this (issue 23, finding 8)
STOP_WITHIN_S = 20.0  # Ctrl-C to the last process gone
CLIENT_TIMEOUT_S = 10.0  # a request that takes longer than this counts as hung


@dataclass
class Answer:
    at: float  # time.monotonic() when the answer (or the failure) came
    status: int | None  # None: no HTTP answer at all
    retry_after: str | None = None
    error: str = ""


@dataclass
class ClientLoop:
    """Requests in a background thread until stopped; bounded by count and time."""

    url: str
    path: str
    body: dict | None = None
    pause: float = 0.05
    max_requests: int = 3000
    max_seconds: float = 120.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
            while (
                not self._stop.is_set()
                and len(self.answers) < self.max_requests
                and time.monotonic() < deadline
            ):
                try:
                    if self.body is None:
                        response = client.get(f"{self.url}{self.path}")
                    else:
                        response = client.post(f"{self.url}{self.path}", json=self.body)
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(time.monotonic(), None, error=repr(exc)))
                else:
                    self.answers.append(
                        Answer(
                            time.monotonic(),
                            response.status_code,
                            response.headers.get("retry-after"),
                            "" if response.status_code == 200 else response.text[:300],
                        )
                    )
                time.sleep(self.pause)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CLIENT_TIMEOUT_S + 5)


def _graph_tier_pid(stack: LocalStackRun) -> int:
    pids = [pid for pid, argv in descendants(stack.popen.pid).items() if "-m graph_service" in argv]
    assert len(pids) == 1, descendants(stack.popen.pid)
    return pids[0]


def test_a_killed_graph_tier_comes_back_and_ctrl_c_leaves_no_process(
    graph: GraphTier, stack_dir: Path
) -> None:
    stack = start_local_stack(graph, stack_dir, "supervised", "--workers", "2")
    seen: dict[int, str] = {}
    predict = ClientLoop(stack.url, f"/v1/models/{MODEL}/predict", ctr.EXAMPLE_REQUEST)
    health = ClientLoop(stack.url, "/healthz", pause=0.2)
    try:
        stack.wait_for_banner(150)
        # Both logic workers ready (each loads the version's features on its own).
        wait_until(
            lambda: all(
                httpx.get(f"{stack.url}/readyz", timeout=2).status_code == 200 for _ in range(6)
            ),
            60,
            "both logic workers ready",
        )
        seen |= descendants(stack.popen.pid)
        killed = _graph_tier_pid(stack)
        predict.start()
        health.start()
        wait_until(lambda: any(a.status == 200 for a in predict.answers), 20, "a first 200")
        killed_at = time.monotonic()
        os.kill(killed, signal.SIGKILL)

        def served_again() -> bool:
            return any(a.status == 200 and a.at > killed_at for a in predict.answers)

        wait_until(served_again, BACK_WITHIN_S, "a 200 from the restarted graph tier")
        back_after = min(a.at for a in predict.answers if a.status == 200 and a.at > killed_at)
        time.sleep(2)  # a few answers from the restarted tier
        predict.stop()
        health.stop()
        seen |= descendants(stack.popen.pid)
        restarted = _graph_tier_pid(stack)
        assert restarted != killed and alive(restarted)
        assert not alive(killed)

        after_kill = [a for a in predict.answers if a.at > killed_at]
        hung = [a for a in predict.answers if a.status is None]
        assert not hung, hung[:5]  # every request got an HTTP answer within the timeout
        unexpected = [a for a in after_kill if a.status not in (200, 503)]
        assert not unexpected, unexpected[:5]
        no_retry_after = [a for a in after_kill if a.status == 503 and not a.retry_after]
        assert not no_retry_after, no_retry_after[:5]
        assert back_after - killed_at < BACK_WITHIN_S
        assert health.answers and all(a.status == 200 for a in health.answers), [
            a for a in health.answers if a.status != 200
        ][:5]
        # The restart is told on the terminal and written to the log folder.
        output = stack.text()
        assert "graph tier" in output and "SIGKILL" in output, output
        up_log = (stack.log_dir / "up.log").read_text()
        assert "graph tier" in up_log and "SIGKILL" in up_log, up_log
        # --workers 2: the logic tier's uvicorn workers are among the pids checked below.
        logic = next(pid for pid, argv in seen.items() if "-m logic_service" in argv)
        workers = [pid for pid, argv in descendants(logic).items() if "spawn_main" in argv]
        assert len(workers) == 2, descendants(logic)
    finally:
        predict.stop()
        health.stop()
        code, took = stack.interrupt(timeout=STOP_WITHIN_S + 40)
    assert code == 0, stack.text()
    assert took < STOP_WITHIN_S, (took, stack.text())
    left = {pid: argv for pid, argv in seen.items() if alive(pid)}
    assert not left, left
    statuses = [a.status for a in predict.answers]
    print(  # shown with -rP: what the run measured
        f"{len(statuses)} requests: {statuses.count(200)} x 200, {statuses.count(503)} x 503; "
        f"a 200 again {back_after - killed_at:.1f} s after the SIGKILL; "
        f"{len(health.answers)} /healthz all 200; Ctrl-C to exit {took:.1f} s, "
        f"{len(seen)} processes checked gone"
    )


def test_a_graph_tier_that_cannot_start_ends_up_after_bounded_retries(
    graph: GraphTier, stack_dir: Path
) -> None:
    broken = stack_dir / "broken-models.config"
    broken.write_text(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "/nowhere"\n')
    stack = start_local_stack(graph, stack_dir, "crashloop", models_config=broken)
    seen: dict[int, str] = {}

    def ended() -> int | None:
        seen.update(descendants(stack.popen.pid))
        return stack.popen.poll()

    try:
        wait_until(lambda: ended() is not None, 120, "the runner to give up")
    finally:
        if stack.popen.poll() is None:
            stack.interrupt(timeout=60)
    code, output = stack.popen.returncode, stack.text()
    # Retried, not given up at the first exit: every attempt logged the parse error.
    attempts = (stack.log_dir / "graph.log").read_text().count("Failed to start server")
    assert 2 <= attempts <= 10, (attempts, output)
    assert code == 1, output
    # The message names the tier, how it exited, that it was retried, and its last lines.
    assert "graph tier" in output and "crash loop" in output, output
    assert "exit status 1" in output, output
    assert 'Expected "}"' in output, output  # graph_service's own parse error, quoted
    assert not [pid for pid in seen if alive(pid)], seen
