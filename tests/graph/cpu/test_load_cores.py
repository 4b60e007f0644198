"""A loading version's threads get one core and every other thread the rest, then all back.

Real OS threads and the kernel's own affinity masks (read back with
sched_getaffinity); nothing is simulated.
"""

from __future__ import annotations

import os
import threading

import pytest

from graph_service.cpu.load_cores import LoadCores
from graph_service.flags import parse_flags

CORES = set(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CORES) < 2, reason="one core: there is nothing to split")


class _Parked:
    """A thread that waits until released, so its affinity can be read."""

    def __init__(self) -> None:
        self.tid = 0
        self._started = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait(5)

    def _run(self) -> None:
        self.tid = threading.get_native_id()
        self._started.set()
        self._release.wait(10)

    def stop(self) -> None:
        self._release.set()
        self._thread.join(5)


@needs_two
def test_loader_gets_one_core_and_serving_threads_the_others_then_all_get_them_back():
    cores = LoadCores()
    loader, serving = _Parked(), _Parked()
    try:
        with cores.loading([loader.tid]):
            load_core = os.sched_getaffinity(loader.tid)
            assert len(load_core) == 1
            assert os.sched_getaffinity(serving.tid) == CORES - load_core
            assert os.sched_getaffinity(threading.get_native_id()) == CORES - load_core
            late = _Parked()  # started by a serving thread during the load
            assert os.sched_getaffinity(late.tid) == CORES - load_core
        for thread in (loader, serving, late):
            assert os.sched_getaffinity(thread.tid) == CORES
        late.stop()
    finally:
        loader.stop()
        serving.stop()


@needs_two
def test_a_failed_load_gives_the_cores_back():
    cores = LoadCores()
    loader = _Parked()
    try:
        with pytest.raises(RuntimeError), cores.loading([loader.tid]):
            raise RuntimeError("load failed")
        assert os.sched_getaffinity(loader.tid) == CORES
        assert os.sched_getaffinity(threading.get_native_id()) == CORES
    finally:
        loader.stop()


def test_disabled_split_leaves_every_thread_alone():
    cores = LoadCores(enabled=False)
    loader = _Parked()
    try:
        with cores.loading([loader.tid]):
            assert os.sched_getaffinity(loader.tid) == CORES
            assert os.sched_getaffinity(threading.get_native_id()) == CORES
        assert not cores.active
    finally:
        loader.stop()


def test_the_split_is_a_flag_on_by_default():
    assert parse_flags([]).split_cores_for_loads is True
    assert parse_flags(["--split_cores_for_loads=false"]).split_cores_for_loads is False
