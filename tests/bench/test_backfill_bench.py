"""The back-fill benchmark end to end on a small log: it sums every row and reports it.

The bench itself (``python -m bench backfill``, a million rows per database) is
not part of the suite; here it runs on 3,000 rows of a real SQLite file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.aggregate_backfill import add_arguments, render, run_backend


def test_the_bench_sums_every_row_of_a_log_from_before_0004(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--rows", "3000", "--batch-rows", "500"])
    result = run_backend("sqlite", tmp_path, args)
    assert result["rows"] == result["counted"] == 3000
    assert result["rows_per_s"] > 0 and result["batch_ms"][50] <= result["batch_ms"]["max"]
    table = render([result], 500)
    assert "| sqlite | 3,000 |" in table and "batch of 500" in table
