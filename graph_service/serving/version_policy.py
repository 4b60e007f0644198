"""Which versions on disk a model wants served (``ServableVersionPolicy``).

Mirrors FileSystemStoragePathSource: the policy picks among the version
directories that exist, not among the ones that loaded. ``latest`` keeps the N
highest numbers (default N=1), ``all`` keeps every version, ``specific`` keeps
the listed versions that exist.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow_serving.config import file_system_storage_path_source_pb2

_SourceConfig = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig
VersionPolicy = _SourceConfig.ServableVersionPolicy


def aspired_versions(policy: VersionPolicy, on_disk: Iterable[int]) -> set[int]:
    """The subset of ``on_disk`` versions the policy aspires to serve."""
    versions = sorted(set(on_disk), reverse=True)
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    num = policy.latest.num_versions if choice == "latest" else 1
    return set(versions[: max(num, 1)])


def describe_policy(policy: VersionPolicy) -> str:
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return f"specific{sorted(policy.specific.versions)}"
    num = policy.latest.num_versions if choice == "latest" else 1
    return f"latest({max(num, 1)})"
