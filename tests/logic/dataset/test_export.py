"""``dataset export`` on real SQLite and PostgreSQL, read back with pyarrow and compared.

Two ctr versions with different fitted transformers (real skops files and
manifests, as export writes them) sit in a tmp model repository; rows go into
the ``predictions`` table as the writer would have written them. Expected
features are computed here with the demo feature function and each version's
own transformer at the time the request arrived, independently of the code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from support.ctr_artifacts import fitted_transformer, synthetic_records, write_assets

from logic_service.__main__ import main
from logic_service.dataset.export import ExportError, ExportRequest, export_dataset
from logic_service.features import ctr
from logic_service.settings import LogicSettings
from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions

T0 = datetime(2026, 12, 4, 23, 59, 0, tzinfo=UTC)  # rows straddle midnight: ages change
TRANSFORMERS = {1: fitted_transformer(seed=1), 2: fitted_transformer(seed=2)}


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    for version, transformer in TRANSFORMERS.items():
        folder = repo / "ctr" / str(version)
        folder.mkdir(parents=True)
        write_assets(folder, "ctr", version, transformer)
    return repo


def _rows() -> list[dict]:
    """60 answered rows over two versions and arms, one failure, one row of a pruned version."""
    records = synthetic_records(60, seed=5)
    rows = []
    for i, record in enumerate(records):
        version = 1 if i % 3 else 2
        labelled = i % 4 == 0
        rows.append(
            {
                "request_id": f"req-{i}",
                "record_index": 0,
                "batch_size": 1,
                "ts": T0 + timedelta(seconds=2 * i),
                "model": "ctr",
                "version": version,
                "arm": "control" if version == 1 else "candidate",
                "strategy": "ab",
                "api_version": "v1",
                "input": json.dumps(record),
                "output": json.dumps({"score": [0.1 * (i % 10)]}),
                "score": 0.1 * (i % 10),
                "latency_ms": 3.0 + i,
                "status": 200,
                "error": None,
                "label": float(i % 2) if labelled else None,
                "reward": None,
                "feedback_at": T0 + timedelta(minutes=5, seconds=i) if labelled else None,
                "feedback_updates": 1 if labelled else 0,
            }
        )
    failed = rows[0] | {"request_id": "failed", "status": 422, "error": "invalid_input"}
    failed |= {"output": None, "score": None, "version": 1, "ts": T0 + timedelta(seconds=7)}
    pruned = rows[1] | {"request_id": "pruned", "version": 3, "ts": T0 + timedelta(seconds=9)}
    other = rows[2] | {"request_id": "other-model", "model": "other"}
    late = rows[3] | {"request_id": "too-late", "ts": T0 + timedelta(hours=2)}
    return [*rows, failed, pruned, other, late]


def _expected_features(row: dict) -> list[float]:
    arrival = row["ts"] - timedelta(milliseconds=row["latency_ms"])
    derived = ctr.derive(json.loads(row["input"]), now=arrival)
    matrix = TRANSFORMERS[row["version"]].transform(pd.DataFrame([derived]))
    return np.asarray(matrix, dtype=np.float32)[0].tolist()


def _settings(repository: Path, url: str) -> LogicSettings:
    return LogicSettings(
        model_repository=repository,
        models=[{"name": "ctr"}, {"name": "other"}],
        storage={"database_url": url},
    )


def _filled(url: str) -> sa.Engine:
    engine = open_database(url)
    with engine.begin() as connection:
        connection.execute(sa.insert(predictions), _rows())
    return engine


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'log.db'}"
    _filled(url).dispose()
    yield url


def _request(out: Path, **options) -> ExportRequest:
    return ExportRequest("ctr", T0, T0 + timedelta(hours=1), out, **options)


def _check_full_export(repository: Path, url: str, out: Path) -> None:
    settings = _settings(repository, url)
    engine = open_database(url)
    seen: list[int] = []
    summary = export_dataset(
        settings, engine, _request(out, chunk_rows=7, rows_per_file=20), progress=seen.append
    )
    engine.dispose()
    table = pq.read_table(out)  # every part file of the folder
    got = {row["request_id"]: row for row in table.to_pylist()}
    expected = {r["request_id"]: r for r in _rows() if r["model"] == "ctr"}
    del expected["too-late"]  # --until excludes it
    assert set(got) == set(expected) and summary.rows == len(expected) == sum(seen)
    assert max(seen) == 7  # read and written in chunks
    for request_id, row in expected.items():
        exported = got[request_id]
        for name in ("version", "arm", "strategy", "status", "error", "score", "label"):
            assert exported[name] == row[name], (request_id, name)
        assert exported["record"] == row["input"] and exported["output"] == row["output"]
        assert exported["ts"] == row["ts"]
        assert exported["feedback_at"] == row["feedback_at"]
        if request_id == "failed":
            assert exported["features"] is None
            assert "failed" in exported["features_note"]
        elif request_id == "pruned":
            assert exported["features"] is None
            assert "version 3 has no manifest" in exported["features_note"]
        else:
            assert exported["features"] == pytest.approx(_expected_features(row), abs=0)
            assert exported["features_note"] is None
            derived = json.loads(exported["derived_features"])
            assert derived["device_brand"] == ctr.derive(json.loads(row["input"]))["device_brand"]
    # the same record under each version's transformer: each row used its own version's
    one = _expected_features(expected["req-1"] | {"version": 1})
    two = _expected_features(expected["req-1"] | {"version": 2})
    assert one != two
    description = json.loads((out / "_export.json").read_text())
    labelled = sum(1 for r in expected.values() if r["label"] is not None)
    assert description["rows"] == summary.rows and description["labelled_rows"] == labelled
    # a part file holds whole chunks of 7, a new one from 20 rows on: 21 + 21 + 20
    files = description["files"]
    assert files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(out / f).num_rows for f in files] == [21, 21, 20]
    assert not list(out.parent.glob(".*tmp*"))  # the staging folder was renamed, not left


def test_a_full_export_on_sqlite_reads_back_row_for_row(
    repository: Path, sqlite_url: str, tmp_path: Path
) -> None:
    _check_full_export(repository, sqlite_url, tmp_path / "set")


@pytest.mark.postgres
def test_a_full_export_on_postgresql_reads_back_row_for_row(
    repository: Path, postgres_url: str, tmp_path: Path
) -> None:
    _filled(postgres_url).dispose()
    _check_full_export(repository, postgres_url, tmp_path / "set")


def test_filters_by_version_arm_and_labels(
    repository: Path, sqlite_url: str, tmp_path: Path
) -> None:
    settings = _settings(repository, sqlite_url)
    engine = open_database(sqlite_url)
    cases = {
        "v2": ({"versions": (2,)}, lambda r: r["version"] == 2),
        "control": ({"arms": ("control",)}, lambda r: r["arm"] == "control"),
        "labelled": ({"labelled_only": True}, lambda r: r["label"] is not None),
        "both": (
            {"versions": (1,), "labelled_only": True},
            lambda r: r["version"] == 1 and r["label"] is not None,
        ),
    }
    for name, (options, wanted) in cases.items():
        out = tmp_path / name
        export_dataset(settings, engine, _request(out, **options))
        got = sorted(pq.read_table(out).column("request_id").to_pylist())
        expected = sorted(
            r["request_id"]
            for r in _rows()
            if r["model"] == "ctr" and r["request_id"] != "too-late" and wanted(r)
        )
        assert got == expected and got, name
    engine.dispose()


def test_an_interrupted_export_leaves_nothing_behind(
    repository: Path, sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_database(sqlite_url)

    def interrupt(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_dataset(
            _settings(repository, sqlite_url),
            engine,
            _request(tmp_path / "set", chunk_rows=5),
            progress=interrupt,
        )
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_writes_with_a_progress_bar_and_refuses_clearly(
    repository: Path, sqlite_url: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("TIERKIT_MODEL_REPOSITORY", str(repository))
    monkeypatch.setenv("TIERKIT_STORAGE__DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TIERKIT_MODELS", json.dumps([{"name": "ctr"}]))
    out = tmp_path / "set"
    base = ["dataset", "export", "--model", "ctr", "--out", str(out)]
    window = ["--since", "2026-12-04T23:00:00Z", "--until", "2026-12-05T00:30:00+00:00"]
    assert main([*base, *window, "--labelled-only", "--version", "1"]) == 0
    captured = capsys.readouterr()
    assert "rows" in captured.err and "100%" in captured.err  # tqdm's bar on stderr
    assert "labelled" in captured.out
    table = pq.read_table(out)
    assert table.num_rows > 0 and all(v is not None for v in table.column("label").to_pylist())
    before = sorted(p.name for p in out.iterdir())

    refusals = {
        "--since: '2026-13-40' is not an ISO 8601 time": [
            *base[:-1], str(tmp_path / "x"), "--since", "2026-13-40",
        ],
        "--model: unknown model 'nope'; configured: ctr": [
            "dataset", "export", "--model", "nope", "--out", str(tmp_path / "y"), *window,
        ],
        f"--out: {out} exists": [*base, *window],
        "must be before --until": [
            *base[:-1], str(tmp_path / "z"), "--since", "2026-12-05", "--until", "2026-12-04",
        ],
    }  # fmt: skip
    for message, argv in refusals.items():
        assert main(argv) == 2, message
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before  # the existing set is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_an_empty_range_is_a_readable_empty_set(
    repository: Path, sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_database(sqlite_url)
    request = ExportRequest("ctr", T0 - timedelta(days=2), T0 - timedelta(days=1), tmp_path / "e")
    assert export_dataset(_settings(repository, sqlite_url), engine, request).rows == 0
    engine.dispose()
    assert pq.read_table(tmp_path / "e").num_rows == 0
    with pytest.raises(ExportError, match="exists"):
        export_dataset(_settings(repository, sqlite_url), engine, request)
