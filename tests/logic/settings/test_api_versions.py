"""``api_versions`` in logic.yaml: what is accepted, what is refused, and the headers it makes.

Header values are compared with figures computed outside the code (``date -u``),
so a wrong epoch or a local-time HTTP-date fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from logic_service.routing.api_versions import deprecation_headers
from logic_service.settings import LogicSettings, load_settings


def _model(api_versions: dict) -> LogicSettings:
    return LogicSettings(models=[{"name": "ctr", "api_versions": api_versions}])


def test_yaml_dates_become_rfc_9745_and_rfc_8594_headers(tmp_path: Path) -> None:
    config = tmp_path / "logic.yaml"
    config.write_text(
        "models:\n"
        "  - name: ctr\n"
        "    api_versions:\n"
        "      v1: {deprecated: 2026-12-01, sunset: 2027-06-30, successor: v2,\n"
        "           link: 'https://example.com/ctr-v2'}\n"
        "      v2: {}\n"
    )
    settings = load_settings(config)
    apis = settings.models[0].api_versions
    assert deprecation_headers("ctr", apis["v1"]) == {
        "Deprecation": "@1796083200",  # date -u -d 2026-12-01T00:00:00Z +%s
        "Sunset": "Wed, 30 Jun 2027 00:00:00 GMT",
        "Link": '</v2/models/ctr/predict>; rel="successor-version", '
        '<https://example.com/ctr-v2>; rel="deprecation"; type="text/html"',
    }
    assert deprecation_headers("ctr", apis["v2"]) == {}


def test_a_time_with_an_offset_is_converted_to_utc() -> None:
    settings = _model({"v1": {"deprecated": "2026-12-01T09:30:00+01:00"}})
    headers = deprecation_headers("ctr", settings.models[0].api_versions["v1"])
    assert headers == {"Deprecation": "@1796113800"}  # date -u -d 2026-12-01T09:30:00+01:00 +%s


def test_without_a_section_every_model_has_no_announcement() -> None:
    assert LogicSettings().models[0].api_versions == {}
    assert LogicSettings().api_retire_window_s == 86_400


@pytest.mark.parametrize(
    ("api_versions", "message"),
    [
        ({"2": {}}, "'2' is not an API version"),
        ({"v0": {}}, "'v0' is not an API version"),
        ({"v1": {"successor": "v1"}}, "v1: successor must be another API version"),
        ({"v1": {"successor": "two"}}, "String should match pattern"),
        ({"v1": {"sunset": "2027-01-01"}}, "sunset needs deprecated"),
        (
            {"v1": {"deprecated": "2027-01-02", "sunset": "2027-01-01"}},
            "sunset must not be before deprecated",
        ),
        ({"v1": {"deprecated": "soon"}}, "deprecated"),
        ({"v1": {"deprecated": "2027-01-01", "sunsett": "x"}}, "Extra inputs are not permitted"),
        ({"v1": {"link": "https://x/ y"}}, "must be a URL without spaces"),
    ],
)
def test_mistakes_are_refused_naming_the_field(api_versions: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _model(api_versions)
    assert message in str(caught.value)
    assert "api_versions" in str(caught.value)


def test_the_retire_window_must_not_be_negative() -> None:
    with pytest.raises(ValidationError, match="api_retire_window_s"):
        LogicSettings(api_retire_window_s=-1)
