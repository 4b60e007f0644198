"""``python -m export versions`` without a stack: the disk's facts, refusals, ``--stack-down``.

Version folders are real folders with manifests as export writes them; the
admin API is a loopback port nothing listens on. The stack-backed half (what is
loaded and in use, prune and rollback against a running logic tier) is in
tests/e2e/test_versions_cli.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

PARITY = {"samples": 8, "max_abs_diff": 2.98e-08, "atol": 1e-05}


def _closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _publish(model_dir: Path, version: int, api: str | None = "v1", parity=None) -> Path:
    folder = model_dir / str(version)
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\0" * 1000)
    (folder / "variables" / "variables.index").write_bytes(b"\1" * 24)
    manifest = {
        "format": "tierkit.manifest/1",
        "name": model_dir.name,
        "version": version,
        "created": f"2026-12-0{version % 9 + 1}T10:00:00Z",
        "parity": parity,
    }
    if api is not None:
        manifest["api_version"] = api
    (folder / "assets.extra").mkdir()
    (folder / "assets.extra" / "tierkit.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Versions 1-5 of ``ctr`` (5 is API v2), ``stable`` on 2 in models.config."""
    model_dir = tmp_path / "repo" / "ctr"
    for version in (1, 2, 3, 4):
        _publish(model_dir, version, parity=PARITY if version == 4 else None)
    _publish(model_dir, 5, api="v2")
    (tmp_path / "models.config").write_text(
        'model_config_list { config { name: "ctr" base_path: "repo/ctr" '
        'model_platform: "tensorflow" version_labels { key: "stable" value: 2 } } }\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIERKIT_ADMIN_URL", _closed_url())
    monkeypatch.setenv("TIERKIT_ADMIN_TOKEN", "t")
    monkeypatch.delenv("TIERKIT_ADMIN_TOKEN_FILE", raising=False)
    return tmp_path / "repo"


def _published(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "ctr").iterdir())


def test_the_list_shows_the_disks_facts_and_says_the_stack_is_unknown(repo, run_export) -> None:
    result = run_export("versions", "ctr", "--repo", repo, "--json")
    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert listed["stack"]["known"] is False and "did not answer" in listed["stack"]["problem"]
    rows = {row["version"]: row for row in listed["versions"]}
    assert list(rows) == [5, 4, 3, 2, 1]
    assert rows[4]["parity"] == "ok (max abs diff 2.98e-08 <= 1e-05, 8 samples)"
    assert rows[3]["parity"] == "not checked" and rows[3]["created"] == "2026-12-04T10:00:00Z"
    assert (rows[5]["api_version"], rows[2]["labels"]) == ("v2", ["stable"])
    assert rows[1]["size_bytes"] == 1000 + 24 + len(
        (repo / "ctr" / "1" / "assets.extra" / "tierkit.json").read_bytes()
    )
    assert {row["state"] for row in rows.values()} == {"unknown"}
    text = run_export("versions", "ctr", "--repo", repo)
    assert text.code == 0 and "stack unknown: the logic tier at http://127.0.0.1:" in text.out


def test_prune_refuses_without_the_admin_api_and_removes_nothing(repo, run_export) -> None:
    result = run_export("versions", "ctr", "prune", "--keep", 1, "--repo", repo)
    assert result.code == 2
    assert result.error.startswith("error: prune: cannot learn which versions are in use: ")
    assert "Nothing removed" in result.error and "--stack-down" in result.error
    assert _published(repo) == ["1", "2", "3", "4", "5"]


def test_stack_down_keeps_labels_the_newest_and_each_apis_newest(repo, run_export) -> None:
    leftover = repo / "ctr" / ".tmp-prune-9-123"  # an interrupted prune's folder
    leftover.mkdir()
    dry = run_export("versions", "ctr", "prune", "--keep", 1, "--stack-down", "--dry-run",
                     "--repo", repo, "--json")  # fmt: skip
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["would_remove"] == [1, 3] and leftover.exists()

    done = run_export("versions", "ctr", "prune", "--keep", 1, "--stack-down", "--repo", repo)
    assert done.code == 0, done.err
    assert _published(repo) == ["2", "4", "5"]  # stable, newest of v1, newest (of v2)
    assert "keep    2: label stable (models.config)" in done.out
    assert "keep    4: newest version of api v1 on disk" in done.out
    assert "removed 3" in done.out and "removed 1" in done.out
    assert ".tmp-prune-9-123 (removed; left by an interrupted prune)" in done.out


BELONGS = "error: {flag} belongs to `versions NAME {owner}`, not {action}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune"], "error: prune needs --keep N: how many of the newest versions to keep"),
        (["prune", "--keep", "0"], "error: --keep 0: must be at least 1 (the newest version"),
        (["--keep", "2"], BELONGS.format(flag="--keep", owner="prune", action="list")),
        (
            ["rollback", "--stack-down"],
            BELONGS.format(flag="--stack-down", owner="prune", action="rollback"),
        ),
        (
            ["prune", "--keep", "1", "--to", "3"],
            BELONGS.format(flag="--to", owner="rollback", action="prune"),
        ),
        (["rollback", "--wait", "0"], "error: --wait 0: must be a positive number of seconds"),
        (["undo"], "error: argument action: invalid choice: 'undo' (choose from 'list', 'prune'"),
        (["prune", "--keep", "two"], "error: argument --keep: invalid int value: 'two'"),
    ],
)
def test_bad_input_exits_2_naming_the_rule(repo, run_cli, argv, message) -> None:
    result = run_cli("versions", "ctr", *argv, "--repo", repo, cwd=repo.parent)
    assert result.code == 2, result.out
    assert result.error.startswith(message), result.error
    assert _published(repo) == ["1", "2", "3", "4", "5"]


def test_unknown_model_bad_name_and_broken_config_exit_2(repo, run_export) -> None:
    missing = run_export("versions", "nope", "--repo", repo)
    assert (missing.code, missing.error) == (
        2,
        f"error: --repo {repo}: no model 'nope' (no folder {repo / 'nope'})",
    )
    bad = run_export("versions", "../ctr", "--repo", repo)
    assert bad.code == 2 and bad.error.startswith("error: --name '../ctr' is not a valid model")
    (repo.parent / "broken.config").write_text("model_config_list {")
    broken = run_export("versions", "ctr", "prune", "--keep", "1", "--stack-down",
                        "--repo", repo, "--config", repo.parent / "broken.config")  # fmt: skip
    assert broken.code == 2 and "not a valid ModelServerConfig" in broken.error
    assert _published(repo) == ["1", "2", "3", "4", "5"]


def test_rollback_without_the_stack_changes_nothing(repo, run_export) -> None:
    before = (repo.parent / "models.config").read_bytes()
    result = run_export("versions", "ctr", "rollback", "--repo", repo)
    assert result.code == 2
    assert result.error.startswith("error: rollback: the logic tier at http://127.0.0.1:")
    assert result.error.endswith("; nothing changed")
    assert (repo.parent / "models.config").read_bytes() == before


def test_choosing_the_previous_version_stays_within_one_api(repo) -> None:
    from export.errors import ExportError
    from export.versions.disk import scan
    from export.versions.rollback import choose_target

    on_disk = scan(repo / "ctr")
    assert choose_target(4, on_disk, None).version == 3
    assert choose_target(4, on_disk, 1).version == 1
    with pytest.raises(ExportError, match=r"no version before 5 of API v2 is published"):
        choose_target(5, on_disk, None)
    with pytest.raises(ExportError, match=r"--to 5: accepts API v2, the current version 4"):
        choose_target(4, on_disk, 5)
    with pytest.raises(ExportError, match=r"--to 4: that is the current version already"):
        choose_target(4, on_disk, 4)
