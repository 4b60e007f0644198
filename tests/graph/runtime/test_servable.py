"""The servable's C API session: every dtype and string form survives a run, errors
are TF Serving's, and loading happens on an idle-class thread only.

Real SavedModels from ``tf.saved_model.save``, loaded by ``Servable.load`` (TF's C++
loader) and run by ``TF_SessionRun``; the thread checks read ``/proc`` of the shared
real server.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf

from graph_service.cpu.low_priority import LowPriorityWorker
from graph_service.errors import ServingError
from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions

LINUX = sys.platform.startswith("linux")
SCHED_IDLE = getattr(os, "SCHED_IDLE", 5)
SCHED_BATCH = getattr(os, "SCHED_BATCH", 3)

# (signature input name, dtype, values with a leading batch dimension)
DTYPE_CASES = [
    ("f16", tf.float16, np.array([[1.5, -2.25]], np.float16)),
    ("f64", tf.float64, np.array([[1e-300, 3.141592653589793]], np.float64)),
    ("i8", tf.int8, np.array([[-128, 127]], np.int8)),
    ("u8", tf.uint8, np.array([[0, 255]], np.uint8)),
    ("i64", tf.int64, np.array([[-(2**62), 2**62]], np.int64)),
    ("flag", tf.bool, np.array([[True, False]], np.bool_)),
]


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signature echoing every dtype above plus strings (and a string length)."""
    specs = {name: tf.TensorSpec([None, 2], dtype, name=name) for name, dtype, _ in DTYPE_CASES}
    specs["text"] = tf.TensorSpec([None], tf.string, name="text")

    class Echo(tf.Module):
        @tf.function(input_signature=[specs])
        def serve(self, inputs):
            out = {f"{k}_out": tf.identity(v) for k, v in inputs.items()}
            out["text_len"] = tf.strings.length(inputs["text"])
            return out

    path = tmp_path_factory.mktemp("servable") / "echo" / "1"
    module = Echo()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def servable(identity_model: Path):
    loaded = Servable.load("echo", 1, identity_model, SessionOptions())
    yield loaded
    loaded.close()


def test_every_dtype_and_string_form_round_trips(servable: Servable) -> None:
    long_text = "é" * 40  # 80 bytes: a heap-allocated tstring; "a" stays inline
    texts = np.array([b"a", long_text.encode(), b"", b"\x00binary\xff"], dtype=object)
    inputs = {name: values for name, _, values in DTYPE_CASES}
    inputs["text"] = texts
    outputs = [f"{name}_out" for name in inputs] + ["text_len"]
    result = servable.run("serving_default", inputs, outputs)
    for name, _, values in DTYPE_CASES:
        out = result[f"{name}_out"]
        assert out.dtype == values.dtype, name
        np.testing.assert_array_equal(out, values)
    assert result["text_out"].tolist() == texts.tolist()
    assert result["text_len"].tolist() == [1, 80, 0, 8]


def test_an_empty_batch_runs(servable: Servable) -> None:
    inputs = {name: np.zeros((0, 2), values.dtype) for name, _, values in DTYPE_CASES}
    inputs["text"] = np.zeros((0,), dtype=object)
    result = servable.run("serving_default", inputs, ["f64_out", "text_out"])
    assert result["f64_out"].shape == (0, 2)
    assert result["text_out"].shape == (0,)


def test_a_tensor_name_not_in_the_graph_is_invalid_argument(servable: Servable) -> None:
    with pytest.raises(ServingError) as caught:
        servable.run_tensors(["no_such_op:0"], ["also_missing:0"], [np.zeros(1)])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no_such_op:0" in caught.value.message


def test_a_feed_of_the_wrong_dtype_is_refused_by_tensorflow(servable: Servable) -> None:
    signature = servable.signatures["serving_default"]
    feed = signature.inputs["f64"].name
    fetch = signature.outputs["f64_out"].name
    with pytest.raises(ServingError) as caught:
        servable.run_tensors([feed], [fetch], [np.zeros((1, 2), np.int32)])
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_closing_twice_is_harmless(identity_model: Path) -> None:
    loaded = Servable.load("echo", 1, identity_model, SessionOptions())
    loaded.close()
    loaded.close()


@pytest.mark.skipif(not LINUX, reason="per-thread scheduling policies are Linux's")
def test_the_worker_runs_on_an_idle_class_thread_and_passes_results_back() -> None:
    worker = LowPriorityWorker()
    try:
        policy = worker.call(lambda: os.sched_getscheduler(threading.get_native_id()))
        assert policy == SCHED_IDLE
        assert worker.call(sum, [1, 2, 3]) == 6
        with pytest.raises(ZeroDivisionError):
            worker.call(lambda: 1 / 0)
    finally:
        worker.close()
    assert os.sched_getscheduler(threading.get_native_id()) != SCHED_IDLE


def _threads(pid: int) -> list[tuple[str, int, int]]:
    """(name, scheduling policy, nice) of every thread of ``pid``."""
    threads = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        # After the command: field 3 (state) is index 0, nice (19) is 16, policy (41) is 38.
        threads.append((name, int(fields[38]), int(fields[16])))
    return threads


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_only_the_load_worker_is_idle_class_after_the_server_loaded_its_models(
    graph_server,
) -> None:
    # Threads inherit their creator's policy: had TensorFlow's shared pools been
    # created by a load on the worker, every graph run would be idle-class too.
    # Once serving, helpers are batch-class (helper_threads.py): full CPU share,
    # nice 0, but their wake-ups do not preempt the event loop.
    threads = _threads(graph_server.process.pid)
    idle = [name for name, policy, _ in threads if policy == SCHED_IDLE]
    assert len(idle) == 1 and idle[0].startswith("servable-load"), threads
    tf_threads = [t for t in threads if t[0].startswith("tf_")]
    assert tf_threads, threads
    assert [t for t in tf_threads if t[1] != SCHED_BATCH or t[2] != 0] == []
    pid = graph_server.process.pid
    loop_stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(loop_stat[38]) == 0, threads  # the event loop (main thread) stays SCHED_OTHER


def test_a_version_published_without_its_variables_fails_to_load(tmp_path: Path) -> None:
    # TF's own loader would accept it and fail every request later (uninitialized
    # variables); a damaged version must fail its load so the serving one stays.
    class Scale(tf.Module):
        def __init__(self) -> None:
            self.factor = tf.Variable(3.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * self.factor}

    path = tmp_path / "scale" / "1"
    module = Scale()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    loaded = Servable.load("scale", 1, path, SessionOptions())
    try:
        y = loaded.run("serving_default", {"x": np.array([2.0], np.float32)}, ["y"])["y"]
        assert y.tolist() == [6.0]
    finally:
        loaded.close()
    for item in (path / "variables").iterdir():
        item.unlink()
    (path / "variables").rmdir()
    with pytest.raises(ServingError) as caught:
        Servable.load("scale", 1, path, SessionOptions())
    assert caught.value.code == grpc.StatusCode.DATA_LOSS
    assert "variables.index does not exist" in caught.value.message


def _pool_wakeups() -> int:
    """Voluntary context switches of this process's TensorFlow inter-op pool threads."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("tf_Compute"):
                continue
            status = (task / "status").read_text()
        except OSError:
            continue
        total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_runs_without_a_deadline_stay_on_the_calling_thread_and_runs_with_one_do_not(
    servable: Servable,
) -> None:
    # Without a deadline nothing needs TensorFlow's pool: its threads stay asleep.
    # With one the pool runs the graph, so that the deadline can cancel it mid-run.
    inputs = {name: values for name, _, values in DTYPE_CASES}
    inputs["text"] = np.array([b"a"], dtype=object)
    outputs = ["f64_out"]
    servable.run("serving_default", inputs, outputs)  # plan cached, pool created
    before = _pool_wakeups()
    for _ in range(200):
        servable.run("serving_default", inputs, outputs)
    in_caller = _pool_wakeups() - before
    before = _pool_wakeups()
    for _ in range(200):
        servable.run("serving_default", inputs, outputs, timeout_s=30.0)
    on_pool = _pool_wakeups() - before
    assert in_caller < 20, (in_caller, on_pool)
    assert on_pool >= 200, (in_caller, on_pool)
