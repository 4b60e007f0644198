"""The compression benchmark's report, from figures made up here (the bench itself is
``python -m bench compression``, minutes long, and not part of the suite)."""

from __future__ import annotations

from bench.compression_report import DOCS, report


def _version(size: int, b1: float, metric: dict | None) -> dict:
    served = {level: {"requests_per_s": 900.0, "p50_ms": 1.0, "p99_ms": 2.5} for level in (1, 16)}
    return {"bytes": size, "load_ms": 3.0, "rows_per_s": {1: b1, 64: b1 * 20},
            "served": served, "metric": metric}


def test_report_has_a_table_per_model_and_the_goals() -> None:
    metric = {"metric": "auc", "float": 0.74, "quantized": 0.739, "drop": 0.001, "rows": 4000}
    model = {
        "name": "ctr",
        "params": 1889,
        "versions": {
            1: _version(60_000, 20_000, None),
            2: _version(7_000, 150_000, metric),
            3: _version(6_000, 150_000, metric),
            4: _version(5_000, 160_000, metric),
        },
    }
    run = {
        "machine": {"nproc": 2, "cpu": "cpu", "ram_gib": 24, "python": "3.11", "kernel": "6"},
        "load_before": [0.5, 0.5, 0.5], "load_after": [1.5, 1, 1], "steal": 0.001,
        "seconds": 200, "measured_at": "2026-12-05 21:00 UTC",
    }
    markdown, data = report([model], run)
    assert "| int8 | 4.9 KiB | 12.0x smaller | 3.0 | 160,000 | 3,200,000 |" in markdown
    assert "| savedmodel | 58.6 KiB | (ref.) |" in markdown
    assert "-0.0010 |" in markdown
    assert "12.0x smaller (goal >= 3x), 8.0x the rows/s at batch 1" in markdown
    assert "AUC drop 0.0010 on 4,000 held-out rows (goal <= 0.005)" in markdown
    assert "shared with other engineers" in markdown
    assert data["models"][0]["name"] == "ctr"
    placed = DOCS.place("# Compression\n\nprose\n", markdown)
    assert placed.startswith("# Compression\n\nprose\n") and DOCS.begin in placed
