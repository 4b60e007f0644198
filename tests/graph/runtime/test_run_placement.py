"""Which runs stay on the event loop: the rule over real SavedModels, then the real server.

The rule is fed run times here (it only compares them with its budget), so what is
tested is the decision, not the clock. The server test counts the run pool's own
context switches in /proc: runs on the loop leave its threads asleep.
(The shared server serves no control-flow model; the rule's verdict on one, the
real ``slow`` SavedModel, is checked above.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, regression_pb2

from graph_service.inference.tensor_proto import to_ndarray, to_proto
from graph_service.runtime.run_placement import (
    PROMOTE_AFTER,
    RunPlacement,
    numeric_elements,
)
from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions

LINUX = sys.platform.startswith("linux")
FAST, SLOW, SLOW_BY_FAR = 0.0001, 0.002, 0.01  # seconds, against the 0.5 ms budget


@pytest.fixture(scope="module")
def half_plus_two(model_zoo):
    loaded = Servable.load(
        "half_plus_two", 1, model_zoo.originals / "half_plus_two_b2", SessionOptions()
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def slow(model_zoo):
    loaded = Servable.load("slow", 1, model_zoo.originals / "slow_a", SessionOptions())
    yield loaded
    loaded.close()


def test_loops_and_branches_anywhere_in_the_graph_are_found(half_plus_two, slow) -> None:
    assert not half_plus_two.value_dependent_ops
    assert slow.value_dependent_ops  # tf.while_loop inside a tf.function


def test_a_signature_earns_the_loop_with_fast_runs_at_its_size(half_plus_two) -> None:
    placement = RunPlacement()
    placement.admit(half_plus_two)
    for _ in range(PROMOTE_AFTER - 1):
        placement.record(half_plus_two, "serving_default", 4, FAST)
    assert not placement.on_loop(half_plus_two, "serving_default", 4)
    placement.record(half_plus_two, "serving_default", 4, FAST)
    assert placement.on_loop(half_plus_two, "serving_default", 4)
    assert placement.on_loop(half_plus_two, "serving_default", 1)
    assert not placement.on_loop(half_plus_two, "serving_default", 5)  # larger than proven
    assert not placement.on_loop(half_plus_two, "other_signature", 1)


def test_two_slow_runs_in_a_row_at_a_proven_size_send_it_back_to_the_pool(half_plus_two) -> None:
    placement = RunPlacement()
    placement.admit(half_plus_two)
    for _ in range(PROMOTE_AFTER):
        placement.record(half_plus_two, "serving_default", 4, FAST)
    placement.record(half_plus_two, "serving_default", 100, SLOW)  # bigger: no verdict on 4
    assert placement.on_loop(half_plus_two, "serving_default", 4)
    placement.record(half_plus_two, "serving_default", 2, SLOW)
    assert placement.on_loop(half_plus_two, "serving_default", 1)  # one could be a GC
    placement.record(half_plus_two, "serving_default", 2, SLOW)
    assert not placement.on_loop(half_plus_two, "serving_default", 1)
    for _ in range(PROMOTE_AFTER):
        placement.record(half_plus_two, "serving_default", 2, FAST)
    assert placement.on_loop(half_plus_two, "serving_default", 2)


def test_a_run_that_only_waited_keeps_the_loop_and_one_slow_by_far_loses_it(
    half_plus_two,
) -> None:
    # Over budget in wall time with little CPU of its own: it waited for the GIL or
    # the core (a version loading beside it), which says nothing of the model.
    placement = RunPlacement()
    placement.admit(half_plus_two)
    for _ in range(PROMOTE_AFTER):
        placement.record(half_plus_two, "serving_default", 4, FAST, FAST)
    placement.record(half_plus_two, "serving_default", 4, 0.004, FAST)
    assert placement.on_loop(half_plus_two, "serving_default", 4)
    placement.record(half_plus_two, "serving_default", 4, 0.004, SLOW)  # its own work
    assert placement.on_loop(half_plus_two, "serving_default", 4)  # once: a GC, maybe
    placement.record(half_plus_two, "serving_default", 4, 0.004, SLOW)  # twice in a row
    assert not placement.on_loop(half_plus_two, "serving_default", 4)
    for _ in range(PROMOTE_AFTER):
        placement.record(half_plus_two, "serving_default", 4, FAST, FAST)
    placement.record(half_plus_two, "serving_default", 4, SLOW_BY_FAR, FAST)  # > 10x budget
    assert not placement.on_loop(half_plus_two, "serving_default", 4)


def test_graphs_with_control_flow_string_inputs_and_a_zero_budget_never_run_there(
    half_plus_two, slow
) -> None:
    placement = RunPlacement()
    off = RunPlacement(budget_s=0.0)
    for servable in (slow, half_plus_two):
        placement.admit(servable)  # as every load does; only half_plus_two is taken
    off.admit(half_plus_two)
    for _ in range(PROMOTE_AFTER):
        placement.record(slow, "serving_default", 1, FAST)
        off.record(half_plus_two, "serving_default", 1, FAST)
    assert not placement.on_loop(slow, "serving_default", 1)
    assert not off.on_loop(half_plus_two, "serving_default", 1)
    assert numeric_elements({"x": np.zeros((2, 3), np.float32), "n": np.array([1])}) == 7
    assert numeric_elements({"text": np.array([b"a"], dtype=object)}) is None
    placement.record(half_plus_two, "serving_default", None, FAST)
    assert not placement.on_loop(half_plus_two, "serving_default", None)


def _run_pool_switches(pid: int) -> int:
    """Voluntary context switches of the server's ``graph-run`` pool threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("graph-run"):
                continue
            status = (task / "status").read_text()
        except OSError:  # the thread ended
            continue
        total += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def tf_values(proto) -> np.ndarray:
    return to_ndarray(proto).ravel()


def _predict(stub, name: str, inputs: dict[str, np.ndarray]) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(to_proto(value))
    return stub.Predict(request)  # no deadline: the pool's runs stay on its thread too


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_the_server_runs_small_numeric_predicts_on_the_loop_and_example_strings_on_the_pool(
    graph_server,
) -> None:
    pid = graph_server.process.pid
    with grpc.insecure_channel(graph_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        x = {"x": np.array([1.0, 2.0], np.float32)}
        for _ in range(4 * PROMOTE_AFTER):  # proves itself on the pool first
            _predict(stub, "half_plus_two", x)
        before = _run_pool_switches(pid)
        for _ in range(200):
            response = _predict(stub, "half_plus_two", x)
        on_loop = _run_pool_switches(pid) - before
        assert response.model_spec.version.value == 2  # y = 0.5 x + 3
        np.testing.assert_allclose(tf_values(response.outputs["y"]), [3.5, 4.0])
        # Regress feeds serialized tf.Example strings: never proven by shape, so pool.
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "half_plus_two"
        request.model_spec.signature_name = "regress_x_to_y"
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
        for _ in range(4 * PROMOTE_AFTER):
            stub.Regress(request)
        before = _run_pool_switches(pid)
        for _ in range(200):
            result = stub.Regress(request)
        on_pool = _run_pool_switches(pid) - before
        assert result.result.regressions[0].value == pytest.approx(4.0)  # 0.5 * 2 + 3
    # On the pool every Predict wakes a graph-run thread (>= 200); on the loop none
    # do, except while the signature proves itself again after a demotion (about
    # 50 for its 16 pool runs), which one stray slow run may cause.
    assert on_loop < 100, (on_loop, on_pool)
    assert on_pool >= 200, (on_loop, on_pool)
