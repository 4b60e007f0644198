"""``python -m bench writer``'s verdict, on counters as /metrics writes them (no load)."""

from __future__ import annotations

from bench.prediction_log_writer import kept_up, parse_counters

PAGE = """\
# HELP tierkit_prediction_log_dropped_total Rows the prediction log could not keep
# TYPE tierkit_prediction_log_dropped_total counter
tierkit_prediction_log_dropped_total{reason="spill_full"} 2.0
tierkit_prediction_log_dropped_total{reason="rejected"} 1.0
tierkit_prediction_log_written_total 56992.0
tierkit_prediction_log_written_created 1.7e9
tierkit_prediction_log_spilled_total 10.0
"""


def test_counters_are_summed_over_their_labels_and_absent_ones_are_zero() -> None:
    assert parse_counters(PAGE) == {
        "dropped": 3.0,
        "written": 56992.0,
        "spilled": 10.0,
        "replayed": 0.0,
    }


def test_the_verdict_allows_in_flight_answers_and_nothing_dropped() -> None:
    clean = {"dropped": 0.0, "written": 56992.0, "spilled": 0.0, "replayed": 0.0}
    assert kept_up(56961, clean, 56992, in_flight=32)  # the run in docs/prediction_log.md
    assert not kept_up(56961, clean, 56992, in_flight=16)  # more extra rows than in flight
    assert not kept_up(56961, clean | {"dropped": 1.0}, 56992, in_flight=32)
    assert not kept_up(56961, clean | {"written": 56900.0}, 56900, in_flight=32)  # rows missing
    spilled = clean | {"written": 56000.0, "spilled": 992.0}
    assert kept_up(56961, spilled, None, in_flight=32)  # spilled rows come back by replay
