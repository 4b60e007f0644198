"""A load's Python work offers a pause between its steps: real loads and warmups, counted."""

from __future__ import annotations

from graph_service.cpu.load_pacing import Pacer
from graph_service.inference.warmup import replay_warmup
from graph_service.runtime.servable import Servable, run_here
from graph_service.runtime.session_options import SessionOptions


def test_a_pacer_sleeps_only_once_its_slice_is_used_up() -> None:
    always = Pacer(slice_s=0.0, pause_s=0.0)
    for _ in range(3):
        always()
    assert always.pauses == 3
    never = Pacer(slice_s=3600.0, pause_s=0.0)
    for _ in range(3):
        never()
    assert never.pauses == 0


def test_while_requests_are_in_flight_a_pacer_keeps_pausing_up_to_its_bound() -> None:
    answers = iter([True, True, False])
    between_requests = Pacer(
        slice_s=0.0, pause_s=0.0, busy=lambda: next(answers), max_yield_s=3600.0
    )  # a bound no busy machine reaches: the answers alone end the pauses
    between_requests()
    assert between_requests.pauses == 3  # paused until the requests were done
    always_busy = Pacer(slice_s=0.0, pause_s=0.0, busy=lambda: True, max_yield_s=0.0)
    always_busy()
    assert always_busy.pauses == 1  # constant traffic: one pause, then the next slice


def test_loading_a_version_offers_pauses_and_still_loads_it(model_zoo) -> None:
    offered: list[None] = []
    servable = Servable.load(
        "half_plus_two",
        1,
        model_zoo.originals / "half_plus_two_b2",
        SessionOptions(),
        pace=lambda: offered.append(None),
    )
    try:
        assert len(offered) >= 2  # before reading the MetaGraphDef, and while scanning its graph
        assert "serving_default" in servable.signatures
        assert not servable.value_dependent_ops
    finally:
        servable.close()


def test_every_warmup_session_call_has_a_pause_offered_before_and_after(model_zoo) -> None:
    servable = Servable.load(
        "half_plus_two", 3, model_zoo.originals / "half_plus_two_b3", SessionOptions()
    )
    events: list[str] = []

    def call(fn, *args):
        events.append("call")
        return run_here(fn, *args)

    try:
        records = replay_warmup(servable, 1, call, lambda: events.append("pace"))
    finally:
        servable.close()
    calls = [i for i, event in enumerate(events) if event == "call"]
    assert records >= 4 and len(calls) >= records  # one record of each kind at least
    for i in calls:
        assert events[i - 1] == "pace" and events[i + 1] == "pace", events[i - 2 : i + 3]
