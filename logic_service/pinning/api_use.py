"""Versions in use because a request API needs them: the newest version of every live API.

A model whose versions serve more than one request API (``api_version`` in
their manifests) must keep one version of each live API loaded: with the
shipped ``latest { num_versions: 1 }`` policy, publishing the first v2 version
would otherwise unload the only v1 version, and every v1 caller would get 503
although v1 is still served (docs/api_versions.md).

The rule, per model:

- the **live** APIs are those of its published versions (a manifest without
  ``api_version``, or no manifest at all, is v1, as the logic tier reads it)
  and those its ``logic.yaml`` entry names (``api_versions`` keys and their
  successors), minus the APIs retired for it (``retired_apis``);
- once its versions and its entry name **two or more** APIs (retired ones
  included), the newest version of each live API is in use ("newest version
  of api v1"), among the versions the user's policy may serve: every
  published one under ``latest`` and ``all``, the listed ones under
  ``specific`` (the user's explicit list is respected per API too); and the
  user's policy selects only among versions of live APIs, so the versions of
  a retired API are released even when they are the newest folders (under
  ``latest { num_versions: 1 }`` a newer v1 version would otherwise push the
  only v2 version out once v1 is retired);
- while that newest version is not ready in the logic tier yet, the newest
  version of the same API that is ready stays in use as well ("serves api v1
  until 1820000200 is ready"): otherwise the graph tier would unload it the
  moment another API's version is loaded, before its successor serves.

With a single API nothing is added: the user's policy already keeps that
API's newest version, new versions load as soon as the graph tier sees them,
and the effective config stays the user's file byte for byte. Announcing the
coming API in ``logic.yaml`` before its first version is published is what
makes that first publish safe: the keeper holds the current API's newest
version from then on, so the graph tier never gets the chance to unload it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2

from logic_service.settings.api_versions import DEFAULT_API_VERSION, is_api_version

MANIFEST = Path("assets.extra") / "tierkit.json"
MANIFEST_FORMAT = "tierkit.manifest/1"
# model -> the versions ready in this logic tier (graph AVAILABLE, features loaded)
ReadySource = Callable[[str], Iterable[int]]


@dataclass
class ManifestApis:
    """The API each version folder accepts, read from its manifest and cached by file identity.

    The keeper looks every second; a manifest is read again only when its size
    or modification time changed, so a repository of many versions costs one
    ``stat`` per version per look.
    """

    _cache: dict[Path, tuple[tuple[int, int] | None, str | None]] = field(default_factory=dict)

    def api_of(self, version_dir: Path) -> str | None:
        """``v1``, ``v2``...; None for a manifest the logic tier would refuse."""
        path = version_dir / MANIFEST
        try:
            stat = os.stat(path)
            identity: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            identity = None
        except OSError:
            return None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        api = DEFAULT_API_VERSION if identity is None else _read_api(path)
        if len(self._cache) > 4096:  # folders come and go; never grow without bound
            self._cache.clear()
        self._cache[path] = (identity, api)
        return api

    def apis(self, folder: Path, versions: Iterable[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for version in versions:
            api = self.api_of(folder / str(version))
            if api is not None:
                found[version] = api
        return found


def _read_api(path: Path) -> str | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        return None
    api = raw.get("api_version", DEFAULT_API_VERSION)
    return api if isinstance(api, str) and is_api_version(api) else None


def announced_apis(api_versions: Mapping[str, object]) -> frozenset[str]:
    """The APIs a model's ``api_versions`` section names: its keys and their successors."""
    named = set(api_versions)
    for spec in api_versions.values():
        successor = getattr(spec, "successor", None)
        if successor:
            named.add(successor)
    return frozenset(named)


def policy_candidates(
    entry: model_server_config_pb2.ModelConfig, published: Iterable[int]
) -> set[int]:
    """The published versions the user's policy may serve, whatever their API."""
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        return set(published) & set(policy.specific.versions)
    return set(published)


@dataclass(frozen=True)
class ApiUse:
    """One version some API needs, and why (``Use.why`` of kind ``api``)."""

    version: int
    why: str


@dataclass(frozen=True)
class ApiNeeds:
    """What the live APIs of one model ask of the graph tier's config.

    ``selectable`` is None while the model serves one API: the user's policy
    then selects from every version folder, as it always did. With more than
    one API it selects only among versions of live APIs, so a retired API's
    versions are released even when they are the newest folders.
    """

    uses: tuple[ApiUse, ...] = ()
    selectable: frozenset[int] | None = None


def api_needs(
    apis_of: Mapping[int, str],
    candidates: Iterable[int],
    announced: Iterable[str] = (),
    retired: Iterable[str] = (),
    ready: Iterable[int] | None = None,
) -> ApiNeeds:
    """The versions live APIs need (pure: every input is given).

    ``apis_of`` maps each published version to its API (versions the logic
    tier would refuse are absent); ``ready`` is None when nobody knows what
    serves (the graph tier's first config, written before the logic tier starts).
    """
    named = {*apis_of.values(), *announced}
    if len(named) < 2:
        return ApiNeeds()
    live = named - set(retired)
    newest: dict[str, int] = {}
    for version in candidates:
        api = apis_of.get(version)
        if api in live and version > newest.get(api, -1):
            newest[api] = version
    ready_now = set(ready) if ready is not None else None
    uses: list[ApiUse] = []
    for api in sorted(newest, key=_api_number):
        target = newest[api]
        uses.append(ApiUse(target, f"newest version of api {api}"))
        if ready_now is None or target in ready_now:
            continue
        serving = [v for v in ready_now if apis_of.get(v) == api and v < target]
        if serving:
            uses.append(ApiUse(max(serving), f"serves api {api} until {target} is ready"))
    selectable = frozenset(v for v, api in apis_of.items() if api in live)
    return ApiNeeds(tuple(uses), selectable)


def _api_number(api: str) -> int:
    return int(api[1:]) if api[1:].isdigit() else 0


@dataclass
class ApiContext:
    """What the API rule needs besides the files and the database, kept between looks.

    ``announced`` comes from logic.yaml (the same on every replica), ``ready``
    from this process's registry (None where no logic tier runs yet: the graph
    tier's first config), and the manifest cache lives as long as the keeper.
    """

    announced: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ready: ReadySource | None = None
    manifests: ManifestApis = field(default_factory=ManifestApis)

    def needs(
        self,
        entry: model_server_config_pb2.ModelConfig,
        folder: Path | None,
        on_disk: set[int] | None,
        retired: Iterable[str],
    ) -> ApiNeeds:
        """What the live APIs of ``entry``'s model need now."""
        if folder is None or not on_disk:
            return ApiNeeds()
        ready: set[int] | None = None
        if self.ready is not None:
            try:
                ready = set(self.ready(entry.name))
            except KeyError:  # a model of models.config this logic tier does not serve
                ready = None
        return api_needs(
            self.manifests.apis(folder, on_disk),
            policy_candidates(entry, on_disk),
            self.announced.get(entry.name, ()),
            retired,
            ready,
        )


def api_context(settings: object, ready: ReadySource | None = None) -> ApiContext:
    """The context of a logic tier: the APIs each model's ``api_versions`` section names."""
    models = getattr(settings, "models", [])
    return ApiContext({m.name: announced_apis(m.api_versions) for m in models}, ready)
