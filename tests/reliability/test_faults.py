"""Faults injected into a real two-tier stack; each test counts what was sent and answered.

Order matters and is the file order: the graph tier is SIGKILLed last. Each
test prints one ``FIGURES`` line (run with ``-s`` to collect them for
docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support.fault_stack import (
    CTR,
    EXAMPLE,
    FIRST,
    SLOW,
    Logic,
    Stack,
    copy_version,
    graph_config,
    start_logic_tier,
    wait_until,
)


def figures(name: str, **counts: object) -> None:
    print(f"FIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


@dataclass
class Load:
    """Steady predict traffic from ``threads`` loops until stopped; every outcome counted."""

    logic: Logic
    threads: int = 3
    timeout: float = 15.0
    outcomes: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    slowest: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post(
                        self.logic.url + f"/v1/models/{CTR}/predict", json=EXAMPLE
                    )
                    outcome: object = response.status_code
                    version = (
                        response.json().get("version") if response.status_code == 200 else None
                    )
                except httpx.HTTPError as exc:
                    outcome, version = type(exc).__name__, None
                took = time.monotonic() - started
                with self._lock:
                    self.outcomes[outcome] += 1
                    if version is not None:
                        self.versions[version] += 1
                    self.slowest = max(self.slowest, took)
                time.sleep(0.02)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._loop, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    @property
    def sent(self) -> int:
        return sum(self.outcomes.values())

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.outcomes)


def graph_status(stack: Stack, model: str = CTR) -> dict[int, dict]:
    response = httpx.get(f"{stack.graph.rest_url}/v1/models/{model}", timeout=5)
    response.raise_for_status()
    return {int(s["version"]): s for s in response.json()["model_version_status"]}


def test_slow_model_is_504_at_its_deadline_and_other_models_are_not_starved(
    logic: Logic,
) -> None:
    assert logic.predict(SLOW, {"seconds": 0.0}).status_code == 200
    assert logic.predict(CTR, EXAMPLE).status_code == 200  # warm: a cold start is not starvation

    def timed_slow() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = logic.predict(SLOW, {"seconds": 3.0})
        return response, time.monotonic() - started

    # More slow runs in flight than there are cores: the graph tier cancels each at its
    # deadline (as TF Serving does with --enforce_session_run_timeout), so none of them
    # holds a core after its caller got its 504.
    slow_callers = 2 * (os.cpu_count() or 1)
    with ThreadPoolExecutor(slow_callers) as pool:
        slows = [pool.submit(timed_slow) for _ in range(slow_callers)]
        fast: list[int] = []
        while not all(s.done() for s in slows):  # the other model while slow calls wait
            fast.append(logic.predict(CTR, EXAMPLE, timeout=10).status_code)
        during = len(fast)
        until = time.monotonic() + 2.5  # and when the slow runs would still be going on
        while time.monotonic() < until:
            fast.append(logic.predict(CTR, EXAMPLE, timeout=10).status_code)
        outcomes = [s.result() for s in slows]
    for response, took in outcomes:
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "graph_timeout"
        assert 0.9 <= took < 2.9, took  # the slow model's 1 s deadline, not its 3 s run
    assert during >= 1
    assert fast == [200] * len(fast)
    figures(
        "slow",
        slow_sent=slow_callers,
        slow_504=len(outcomes),
        other_model_sent=len(fast),
        other_model_200=fast.count(200),
    )


def _publish_damaged(stack: Stack, version: int, damage: str) -> Path:
    model_dir = stack.model_dir(CTR)
    staging = model_dir / f".tmp-damaged-{version}"
    shutil.copytree(model_dir / str(FIRST), staging)
    if damage == "truncated saved_model.pb":
        pb = staging / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:100])
    else:
        shutil.rmtree(staging / "variables")
    final = model_dir / str(version)
    staging.rename(final)
    return final


@pytest.mark.parametrize(
    ("version", "damage"), [(2, "truncated saved_model.pb"), (3, "missing variables")]
)
def test_a_corrupt_version_leaves_the_previous_one_serving(
    stack: Stack, logic: Logic, version: int, damage: str
) -> None:
    path = _publish_damaged(stack, version, damage)
    try:
        with Load(logic, threads=2) as load:

            def failed() -> dict | None:
                status = graph_status(stack).get(version)
                if status and status["status"]["error_code"] not in ("OK", 0):
                    return status
                return None

            status = wait_until(failed, 60, f"the graph tier to report version {version} failed")
            time.sleep(1.0)  # keep the load on after the failure is known
        assert status["state"] == "END", status
        assert status["status"]["error_message"], status
        assert stack.graph.available_versions(CTR) == [FIRST]
        assert set(load.outcomes) == {200}, load.outcomes
        assert set(load.versions) == {FIRST}, load.versions
        figures(f"corrupt ({damage})", sent=load.sent, answered_200=load.outcomes[200])
    finally:
        shutil.rmtree(path)
    # TF Serving keeps the END state of a failed version in its status; serving stays on 1.
    assert stack.graph.available_versions(CTR) == [FIRST]


def test_a_version_deleted_while_serving_falls_back_without_errors(
    stack: Stack, logic: Logic
) -> None:
    newer = 4
    copy_version(stack, FIRST, newer)
    wait_until(
        lambda: logic.predict(CTR, EXAMPLE).json().get("version") == newer,
        60,
        f"version {newer} to serve through the logic tier",
    )
    with Load(logic, threads=3) as load:
        time.sleep(0.5)
        shutil.rmtree(stack.model_dir(CTR) / str(newer))
        wait_until(
            lambda: stack.graph.available_versions(CTR) == [FIRST], 60, "graph back on version 1"
        )
        wait_until(
            lambda: load.versions[FIRST] > 0 and logic.predict(CTR, EXAMPLE).json()["version"] == 1,
            30,
            "logic tier back on version 1",
        )
        time.sleep(0.5)
    assert set(load.outcomes) == {200}, load.outcomes
    assert set(load.versions) <= {FIRST, newer} and load.versions[FIRST] > 0
    figures("version deleted", sent=load.sent, answered_200=load.outcomes[200])


def test_a_broken_models_config_keeps_the_previous_config(stack: Stack, logic: Logic) -> None:
    good = stack.config.read_text()
    log_before = len(stack.graph.process.tail(100000))
    try:
        with Load(logic, threads=2) as load:
            stack.config.write_text('model_config_list { config { name: "ctr" base_path: ')
            wait_until(
                lambda: (
                    "Keeping the current models" in stack.graph.process.tail(100000)[log_before:]
                ),
                30,
                "the graph tier to log the refused config",
            )
            time.sleep(1.5)  # more polls of the broken file
            with_unknown_field = good.replace("model_platform", "no_such_field")
            stack.config.write_text(with_unknown_field)
            wait_until(
                lambda: (
                    stack.graph.process.tail(100000)[log_before:].count(
                        "Keeping the current models"
                    )
                    >= 2
                ),
                30,
                "the graph tier to refuse the second broken config",
            )
            time.sleep(1.0)
        assert set(load.outcomes) == {200}, load.outcomes
        assert stack.graph.available_versions(CTR) == [FIRST]
        assert logic.ready()
        figures(
            "broken models.config",
            configs_refused=2,
            sent=load.sent,
            answered_200=load.outcomes[200],
        )
    finally:
        stack.config.write_text(graph_config(stack.graph.repo))
    assert good == stack.config.read_text()


def _rows(database: Path, status: int | None = None) -> int:
    with sqlite3.connect(database) as db:
        if status is None:
            return db.execute("select count(*) from predictions").fetchone()[0]
        return db.execute(
            "select count(*) from predictions where status = ?", (status,)
        ).fetchone()[0]


def test_normal_load_logs_exactly_the_2xx_answers(stack: Stack) -> None:
    tier = start_logic_tier(stack, name="counted")
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: tier.predict(CTR, EXAMPLE).status_code, range(120)))
        two_xx = answers.count(200)
        wait_until(lambda: _rows(tier.database, 200) >= two_xx, 20, "the log to catch up")
        time.sleep(0.5)
        assert two_xx == 120
        assert _rows(tier.database, 200) == two_xx
        assert tier.metric("tierkit_prediction_log_dropped") == 0
        figures("log normal load", sent=120, answered_2xx=two_xx, logged=_rows(tier.database, 200))
    finally:
        tier.stop()


def test_a_full_log_queue_spills_and_loses_no_record_nor_an_answer(stack: Stack) -> None:
    tier = start_logic_tier(
        stack,
        "  queue_size: 5\n  batch_size: 1000\n  busy_timeout_ms: 200\n  write_retry_s: 1\n",
        name="pressure",
    )
    # Another writer holds the database: the recorder cannot insert, its queue fills up
    # and the rest goes to the spill folder (issue 28: before, counted drops).
    lock = sqlite3.connect(tier.database, timeout=1, isolation_level=None)
    try:
        lock.execute("begin exclusive")
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: tier.predict(CTR, EXAMPLE).status_code, range(60)))
        spilled = tier.metric("tierkit_prediction_log_spilled")
        assert answers == [200] * 60
        assert spilled > 0
    finally:
        lock.execute("rollback")
        lock.close()
    try:
        wait_until(lambda: _rows(tier.database, 200) >= 60, 40, "the spilled rows replayed")
        written = _rows(tier.database, 200)
        dropped = tier.metric("tierkit_prediction_log_dropped")
        spilled = tier.metric("tierkit_prediction_log_spilled")  # the writer's own spills too
        replayed = tier.metric("tierkit_prediction_log_replayed")
    finally:
        tier.stop()
    assert (written, dropped) == (60, 0)  # every record logged, none dropped
    assert replayed == spilled
    figures(
        "log queue full",
        sent=60,
        answered_200=60,
        logged=written,
        spilled=int(spilled),
        dropped=int(dropped),
    )


def test_a_restarted_logic_tier_keeps_rollout_state_and_prediction_log(stack: Stack) -> None:
    token = "admin-secret-for-tests"
    env = {"TIERKIT_ADMIN_TOKEN": token}
    tier = start_logic_tier(stack, env=env, name="restarted")
    admin = {"Authorization": f"Bearer {token}"}
    url = f"{tier.url}/admin/rollouts/{CTR}"
    spec = {"strategy": "split", "weights": {str(FIRST): 1.0}, "reason": "reliability test"}
    try:
        put = httpx.put(url, json=spec, headers=admin, timeout=10)
        assert put.status_code == 200, put.text
        before = httpx.get(url, headers=admin, timeout=10).json()
        answered = [tier.predict(CTR, EXAMPLE).status_code for _ in range(15)]
        assert answered == [200] * 15
        tier.stop()  # SIGTERM: the recorder writes what is still queued
        assert _rows(tier.database, 200) == 15
        tier.process.popen = None
        tier.start()
        after = httpx.get(url, headers=admin, timeout=10).json()
        assert after == before
        assert _rows(tier.database, 200) == 15
        assert tier.predict(CTR, EXAMPLE).status_code == 200
        figures("logic restart", sent=16, answered_200=16, logged_before_restart=15, kept_after=15)
    finally:
        tier.stop()


def test_graph_tier_sigkilled_under_load_is_503_and_service_resumes(
    stack: Stack, logic: Logic
) -> None:
    deadline_s = 2.0
    with Load(logic, threads=3, timeout=30) as load:
        wait_until(lambda: load.snapshot()[200] >= 10, 30, "steady load")
        before_kill = load.snapshot()
        stack.graph.process.popen.kill()
        stack.graph.process.popen.wait(10)
        wait_until(lambda: not logic.ready(), 15, "/readyz to turn false")
        wait_until(lambda: load.snapshot()[503] >= 5, 15, "503 answers while down")
        down = load.snapshot()
        stack.graph.restart()
        wait_until(lambda: logic.ready(), 60, "/readyz to turn true again")
        resumed_from = load.snapshot()[200]
        wait_until(lambda: load.snapshot()[200] >= resumed_from + 10, 30, "answers again")
    outcomes = load.outcomes
    assert set(outcomes) <= {200, 503, 504}, outcomes  # no hang, no 500, no dropped connection
    assert outcomes[200] + outcomes[503] + outcomes[504] == load.sent
    assert down[503] > 0 and before_kill[200] >= 10
    assert load.slowest < deadline_s + 3.0, load.slowest
    assert logic.process.alive()
    figures(
        "graph SIGKILL",
        sent=load.sent,
        answered_200=outcomes[200],
        failed_503=outcomes[503],
        failed_504=outcomes[504],
        slowest_s=round(load.slowest, 2),
    )
