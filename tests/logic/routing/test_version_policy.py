from __future__ import annotations

import pytest

from logic_service.routing.version_policy import NoVersion, StableOrNewest
from logic_service.versions.routable import RoutableModel


def test_stable_label_wins_when_its_version_is_ready() -> None:
    model = RoutableModel("ctr", (10, 20, 30), {"stable": 20})
    assert StableOrNewest().choose(model) == 20


def test_newest_ready_version_without_a_usable_label() -> None:
    assert StableOrNewest().choose(RoutableModel("ctr", (10, 20), {})) == 20
    assert StableOrNewest().choose(RoutableModel("ctr", (10, 20), {"stable": 5})) == 20
    assert StableOrNewest("gold").choose(RoutableModel("ctr", (1, 2), {"stable": 1})) == 2


def test_nothing_ready_is_an_error_naming_the_model() -> None:
    with pytest.raises(NoVersion, match="ctr"):
        StableOrNewest().choose(RoutableModel("ctr", (), {}))
