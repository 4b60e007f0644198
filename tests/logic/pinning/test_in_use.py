"""Which versions are in use and why; pins in the shared database; what a rollout misses.

``versions_in_use`` is what the keeper pins by and what the admin API and a
versions CLI show; the pins live in ``version_pins`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logic_service.graph.client import VersionStatus
from logic_service.pinning.in_use import Use, in_use_now, versions_in_use
from logic_service.pinning.missing import missing_versions
from logic_service.pinning.pins import OPERATOR, Pin, PinStore
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.database import open_database
from logic_service.storage.rollout_state import RolloutStore


def _why(uses: dict[int, list[Use]]) -> dict[int, list[str]]:
    return {v: [u.why for u in reasons] for v, reasons in uses.items()}


def test_every_strategy_names_its_versions_with_their_roles() -> None:
    labels = {"stable": 1, "canary": 2}
    cases = {
        "split": (RolloutSpec(strategy="split", weights={"stable": 90, "3": 10}), {
            1: ["split arm (weight 90) (label stable)", "label stable"],
            2: ["label canary"],
            3: ["split arm (weight 10)"],
        }),
        "canary": (RolloutSpec(strategy="canary", candidate="canary"), {
            1: ["canary baseline (label stable)", "label stable"],
            2: ["canary candidate (label canary)", "label canary"],
        }),
        "blue_green": (RolloutSpec(strategy="blue_green", active="4", standby="1"), {
            1: ["blue-green standby", "label stable"],
            2: ["label canary"],
            4: ["blue-green active"],
        }),
        "bandit": (RolloutSpec(strategy="bandit", arms=["5", "6"]), {
            1: ["label stable"],
            2: ["label canary"],
            5: ["bandit arm"],
            6: ["bandit arm"],
        }),
        "shadow and holdout": (
            RolloutSpec(shadow={"target": "7"}, holdout={"control": "8"}),
            {
                1: ["label stable"],
                2: ["label canary"],
                7: ["shadow target"],
                8: ["holdout control"],
            },
        ),
    }  # fmt: skip
    for name, (spec, expected) in cases.items():
        assert _why(versions_in_use(spec, labels)) == expected, name


def test_an_ended_rollout_names_nothing_and_pins_say_who_holds_them() -> None:
    pins = [
        Pin("ctr", 3, OPERATOR, "compare offline", 0.0),
        Pin("ctr", 4, "pending:abc", "rollout set (canary)", 0.0, 60.0),
    ]
    assert _why(versions_in_use(RolloutSpec(), {}, pins)) == {
        3: ["pin by operator: compare offline"],
        4: ["pinned while rollout set (canary) waits for it"],
    }
    # a label nobody defined names no version (the rollout's warning says so)
    assert versions_in_use(RolloutSpec(strategy="canary", candidate="canary"), {}) == {}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tierkit.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = open_database(url)
    yield engine
    engine.dispose()


def test_pins_are_shared_rows_and_pending_ones_expire(engine, tmp_path: Path) -> None:
    store = PinStore(engine)
    store.add("ctr", [1_800_000_000, 1_800_000_001], OPERATOR, "keep", now=100.0)
    store.add("ctr", [1_800_000_000], OPERATOR, "twice is once", now=101.0)
    store.add("ctr", [7], "pending:w1", "rollout set", expires_at=150.0, now=100.0)
    store.add("other", [7], OPERATOR, "another model", now=100.0)
    assert [(p.version, p.holder) for p in store.active("ctr", now=120.0)] == [
        (7, "pending:w1"),
        (1_800_000_000, OPERATOR),
        (1_800_000_001, OPERATOR),
    ]
    assert [p.version for p in store.active("ctr", now=151.0)] == [1_800_000_000, 1_800_000_001]
    assert store.drop_expired(now=151.0) == 1
    assert store.remove("ctr", [1_800_000_001], OPERATOR) == 1
    assert store.remove("ctr", [1_800_000_001], OPERATOR) == 0
    assert [p.model for p in store.active(now=151.0)] == ["ctr", "other"]

    # in_use_now: rollout, pins and the labels of the user's models.config together
    RolloutStore(engine).ensure("ctr", RolloutSpec(strategy="canary", candidate="9"))
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list { config { name: "ctr" base_path: "/m" model_platform: "tensorflow" '
        'version_labels { key: "stable" value: 8 } } }'
    )
    uses = _why(in_use_now(engine, config, "ctr"))
    assert uses == {
        8: ["canary baseline (label stable)", "label stable"],
        9: ["canary candidate"],
        1_800_000_000: ["pin by operator: keep"],
    }
    assert _why(in_use_now(engine, None, "ctr"))[9] == ["canary candidate"]


def test_missing_versions_say_why_each_cannot_serve() -> None:
    spec = RolloutSpec(
        strategy="split", weights={"1": 1, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "green": 1}
    )
    graph = {
        3: VersionStatus(3, "END", "Can't parse saved_model.pb"),
        4: VersionStatus(4, "LOADING"),
        5: VersionStatus(5, "AVAILABLE"),
    }
    found = missing_versions(
        spec, ready=(1,), graph=graph, labels={}, published={1, 3, 4, 5, 6}, refused={6: "bad"}
    )
    assert [(m.target, m.why, m.lasting) for m in found] == [
        ("2", "not published (its version folder is gone)", True),
        ("3", "failed to load: Can't parse saved_model.pb", True),
        ("4", "loading in the graph tier", False),
        ("5", "loading its features in the logic tier", False),
        ("6", "refused by the logic tier: bad", True),
        ("green", "label not defined in models.config", True),
    ]
    assert found[1].text() == "split arm (weight 1) 3: failed to load: Can't parse saved_model.pb"
