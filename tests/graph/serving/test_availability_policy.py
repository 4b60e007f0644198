"""The availability-preserving policy alone: a pure function over version snapshots.

The cases follow TF Serving's availability_preserving_policy_test.cc (unload an
unaspired version only while the model keeps serving, lowest first; otherwise load
the highest new aspired version), plus the manager-level promise they add up to:
a new version is loaded before the old one is unloaded, and a failed load leaves
the old one serving.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from graph_service.errors import ServingError, failed_precondition
from graph_service.serving.availability_policy import (
    LOAD,
    UNLOAD,
    VersionAction,
    VersionSnapshot,
    next_action,
)
from graph_service.serving.manager import Manager
from graph_service.serving.version_state import State

START, LOADING, AVAILABLE, UNLOADING, END = (
    State.START,
    State.LOADING,
    State.AVAILABLE,
    State.UNLOADING,
    State.END,
)


def snap(version: int, state: State, aspired: bool) -> VersionSnapshot:
    return VersionSnapshot(version, state, aspired)


def test_nothing_to_do_without_versions():
    assert next_action([]) is None


def test_loads_a_new_aspired_version():
    assert next_action([snap(1, START, True)]) == VersionAction(LOAD, 1)


def test_loads_the_highest_new_aspired_version_first():
    versions = [snap(3, START, True), snap(7, START, True), snap(5, START, True)]
    assert next_action(versions) == VersionAction(LOAD, 7)


def test_keeps_the_old_version_serving_while_the_new_one_is_new_or_loading():
    assert next_action([snap(1, AVAILABLE, False), snap(2, START, True)]) == VersionAction(LOAD, 2)
    assert next_action([snap(1, AVAILABLE, False), snap(2, LOADING, True)]) is None


def test_unloads_the_old_version_once_the_new_one_serves():
    versions = [snap(1, AVAILABLE, False), snap(2, AVAILABLE, True)]
    assert next_action(versions) == VersionAction(UNLOAD, 1)


def test_a_failed_new_version_leaves_the_old_one_serving():
    # A load that failed ends in END (with its error): nothing aspired serves, so
    # the only unaspired AVAILABLE version stays.
    assert next_action([snap(1, AVAILABLE, False), snap(2, END, True)]) is None


def test_unloads_before_it_loads():
    versions = [snap(1, AVAILABLE, False), snap(2, AVAILABLE, True), snap(3, START, True)]
    assert next_action(versions) == VersionAction(UNLOAD, 1)


def test_unloads_the_lowest_unaspired_version_first():
    versions = [snap(4, AVAILABLE, False), snap(2, AVAILABLE, False), snap(9, AVAILABLE, True)]
    assert next_action(versions) == VersionAction(UNLOAD, 2)


def test_of_two_unaspired_serving_versions_one_goes_even_while_the_new_one_loads():
    versions = [snap(1, AVAILABLE, False), snap(2, AVAILABLE, False), snap(3, LOADING, True)]
    assert next_action(versions) == VersionAction(UNLOAD, 1)
    # ... but the last one keeps serving until the new one does.
    assert next_action([snap(2, AVAILABLE, False), snap(3, LOADING, True)]) is None


def test_a_model_nobody_aspires_to_is_unloaded():
    assert next_action([snap(1, AVAILABLE, False)]) == VersionAction(UNLOAD, 1)


def test_versions_on_their_way_are_left_alone():
    # Unloading or ending versions are not unloaded again; an unaspired version
    # that is still loading is not unloaded either (the manager cancels its load).
    for state in (LOADING, UNLOADING, END):
        assert next_action([snap(1, state, False), snap(2, AVAILABLE, True)]) is None


def test_nothing_to_do_when_the_aspired_versions_serve():
    assert next_action([snap(1, AVAILABLE, True), snap(2, AVAILABLE, True)]) is None


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_the_order_of_the_snapshots_does_not_matter(order):
    versions = [
        snap(1, AVAILABLE, False),
        snap(2, AVAILABLE, False),
        snap(5, START, True),
        snap(4, START, True),
    ]
    assert next_action([versions[i] for i in order]) == VersionAction(UNLOAD, 1)
    remaining = [v for v in versions if v.version != 1]
    assert next_action(reversed(remaining)) == VersionAction(LOAD, 5)


# ------------------------------------------------------------ through the manager


class _FakeServable:
    def __init__(self, name: str, version: int) -> None:
        self.name, self.version, self.closed = name, version, False

    def close(self) -> None:
        self.closed = True


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _states(manager: Manager, name: str) -> dict[int, State]:
    return {s.version: s.state for s in manager.statuses(name)}


def test_the_manager_loads_the_new_version_before_it_unloads_the_old_one():
    release_v2 = threading.Event()

    def load(name: str, version: int, path: Path):
        if version == 2:
            assert release_v2.wait(10)
        return _FakeServable(name, version)

    manager = Manager(load, max_load_retries=0)
    manager.start()
    try:
        manager.set_aspired("m", {1: Path("/m/1")})
        _wait(lambda: _states(manager, "m") == {1: AVAILABLE})
        manager.set_aspired("m", {2: Path("/m/2")})
        _wait(lambda: _states(manager, "m").get(2) == LOADING)
        # While version 2 loads, version 1 still answers requests.
        with manager.acquire("m", None) as servable:
            assert servable.version == 1
        release_v2.set()
        _wait(lambda: _states(manager, "m") == {2: AVAILABLE, 1: END})
        with manager.acquire("m", None) as servable:
            assert servable.version == 2
    finally:
        release_v2.set()
        manager.stop()


def test_a_version_that_fails_to_load_leaves_the_old_one_serving():
    def load(name: str, version: int, path: Path):
        if version == 2:
            raise failed_precondition("broken version")
        return _FakeServable(name, version)

    manager = Manager(load, max_load_retries=0)
    manager.start()
    try:
        manager.set_aspired("m", {1: Path("/m/1")})
        _wait(lambda: _states(manager, "m") == {1: AVAILABLE})
        manager.set_aspired("m", {2: Path("/m/2")})
        _wait(lambda: _states(manager, "m").get(2) == END)
        time.sleep(0.05)  # give the loader thread a chance to (wrongly) unload 1
        assert _states(manager, "m") == {2: END, 1: AVAILABLE}
        error = manager.statuses("m")[0].error
        assert isinstance(error, ServingError) and "broken version" in error.message
        with manager.acquire("m", None) as servable:
            assert servable.version == 1
    finally:
        manager.stop()
