"""The newest version of every live request API is in use (``pinning/api_use.py``).

Pure rules first (which versions, why, what the user's policy may select), then
the manifests read from real version folders, then the effective config the
keeper writes from them.
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import text_format

from logic_service.pinning.api_use import (
    ApiContext,
    ManifestApis,
    announced_apis,
    api_needs,
)
from logic_service.pinning.models_config import (
    ModelServerConfig,
    effective_config,
    read_user_config,
)


def _why(needs) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for use in needs.uses:
        found.setdefault(use.version, []).append(use.why)
    return found


def test_one_api_needs_nothing_the_users_policy_does_not_already_give() -> None:
    needs = api_needs({1: "v1", 2: "v1"}, {1, 2})
    assert needs.uses == () and needs.selectable is None


def test_two_apis_keep_the_newest_version_of_each() -> None:
    needs = api_needs({1: "v1", 2: "v1", 3: "v2", 4: "v2"}, {1, 2, 3, 4})
    assert _why(needs) == {2: ["newest version of api v1"], 4: ["newest version of api v2"]}
    assert needs.selectable == {1, 2, 3, 4}


def test_an_announced_api_protects_the_current_one_before_its_first_version() -> None:
    needs = api_needs({1: "v1", 2: "v1"}, {1, 2}, announced={"v2"})
    assert _why(needs) == {2: ["newest version of api v1"]}


def test_a_retired_api_is_released_even_as_the_newest_folder() -> None:
    needs = api_needs({1: "v1", 2: "v2", 3: "v1"}, {1, 2, 3}, retired={"v1"})
    assert _why(needs) == {2: ["newest version of api v2"]}
    assert needs.selectable == {2}  # latest { num_versions: 1 } must not pick 3


def test_until_the_new_version_of_an_api_is_ready_the_one_serving_it_stays() -> None:
    apis = {1: "v1", 2: "v2", 3: "v1"}
    needs = api_needs(apis, {1, 2, 3}, ready={1, 2})
    assert _why(needs) == {
        3: ["newest version of api v1"],
        1: ["serves api v1 until 3 is ready"],
        2: ["newest version of api v2"],
    }
    assert _why(api_needs(apis, {1, 2, 3}, ready={1, 2, 3})) == {
        3: ["newest version of api v1"],
        2: ["newest version of api v2"],
    }
    # nobody knows what serves (the graph tier's first config): no carry-over
    assert 1 not in _why(api_needs(apis, {1, 2, 3}, ready=None))


def test_a_specific_policy_is_respected_per_api() -> None:
    needs = api_needs({1: "v1", 2: "v1", 3: "v2"}, {1, 3})  # the user lists 1 and 3
    assert _why(needs) == {1: ["newest version of api v1"], 3: ["newest version of api v2"]}


def test_announced_apis_are_the_keys_and_their_successors() -> None:
    class Spec:
        def __init__(self, successor: str | None) -> None:
            self.successor = successor

    assert announced_apis({"v1": Spec("v2"), "v3": Spec(None)}) == {"v1", "v2", "v3"}


def _version(folder: Path, version: int, manifest: object | None) -> Path:
    path = folder / str(version)
    (path / "assets.extra").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (path / "assets.extra" / "tierkit.json").write_text(text)
    return path


def _manifest(api: str | None) -> dict[str, object]:
    data: dict[str, object] = {"format": "tierkit.manifest/1", "name": "m", "version": 0}
    if api is not None:
        data["api_version"] = api
    return data


def test_manifests_name_the_api_as_the_logic_tier_reads_them(tmp_path: Path) -> None:
    _version(tmp_path, 1, None)  # no manifest: takes tensors, served as v1
    _version(tmp_path, 2, _manifest(None))  # written before API versions: v1
    _version(tmp_path, 3, _manifest("v2"))
    _version(tmp_path, 4, _manifest("2"))  # refused by the logic tier: no API
    _version(tmp_path, 5, "{not json")
    _version(tmp_path, 6, {"format": "other", "api_version": "v3"})
    apis = ManifestApis()
    assert apis.apis(tmp_path, range(1, 7)) == {1: "v1", 2: "v1", 3: "v2"}
    # a rewritten manifest is read again (its size changes), an unchanged one is not
    (tmp_path / "3" / "assets.extra" / "tierkit.json").write_text(json.dumps(_manifest("v10")))
    assert apis.api_of(tmp_path / "3") == "v10"


def test_the_effective_config_keeps_both_apis_and_drops_a_retired_newest(tmp_path: Path) -> None:
    folder = tmp_path / "ctr"
    _version(folder, 1, _manifest("v1"))
    _version(folder, 2, _manifest("v2"))
    _version(folder, 3, _manifest("v1"))
    config = tmp_path / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "ctr" base_path: "{folder}" '
        'model_platform: "tensorflow" model_version_policy { latest { num_versions: 1 } } } }\n'
    )
    user = read_user_config(config)
    (entry,) = user.config.model_config_list.config
    context = ApiContext()

    def versions(retired: set[str]) -> list[int]:
        needs = context.needs(entry, folder, {1, 2, 3}, retired)
        effective = effective_config(
            user, {"ctr": {u.version for u in needs.uses}}, {"ctr": {1, 2, 3}},
            {"ctr": set(needs.selectable or ())},
        )  # fmt: skip
        parsed = text_format.Parse(effective.text.decode(), ModelServerConfig())
        return list(parsed.model_config_list.config[0].model_version_policy.specific.versions)

    assert versions(set()) == [2, 3]  # the policy's newest (3, v1) and v2's newest
    assert versions({"v1"}) == [2]  # v1 retired: 3 is the newest folder, yet released
