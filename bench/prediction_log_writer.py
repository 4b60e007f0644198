"""The prediction log's writer at a running stack's maximum throughput: does any row go missing?

Against a stack that is already up (``./scripts/up``, or the compose stack's
nginx), wrk sends the demo request as fast as ``--connections`` allow for
``--seconds``; then, once the writer has had ``--settle`` seconds to flush,
the bench reads the logic tier's ``/metrics`` (before and after) and, with
``--database``, counts the rows of ``predictions``. The writer keeps up when
rows added = answers (plus the requests still in flight when wrk stopped,
at most one per connection), with ``tierkit_prediction_log_dropped_total``
unchanged. ``spilled`` says whether the spill folder had to take rows (the
database slower than traffic): then they come back by replay, so 0 lost
still holds once ``replayed`` equals it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench import wrk
from logic_service.features.ctr import EXAMPLE_REQUEST
from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions

COUNTERS = ("dropped", "written", "spilled", "replayed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the logic tier")
    parser.add_argument("--model", default="ctr")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=5.0, help="wait for the last flush")
    parser.add_argument(
        "--database", help="storage.database_url of the stack, to count rows (optional)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")


def counters(url: str) -> dict[str, float]:
    return parse_counters(httpx.get(f"{url}/metrics", timeout=10).text)


def parse_counters(text: str) -> dict[str, float]:
    """The writer's counters in a Prometheus text page, each summed over its labels."""
    found: dict[str, float] = {}
    for name in COUNTERS:
        pattern = rf"^tierkit_prediction_log_{name}_total(?:{{[^}}]*}})? (\S+)$"
        found[name] = sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))
    return found


def count_rows(database_url: str | None) -> int | None:
    if database_url is None:
        return None
    engine = open_database(database_url, migrate=False)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(predictions)).scalar())
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    binary = wrk.find_wrk()
    if binary is None:
        print("error: wrk is not installed (apt-get install wrk; ./scripts/test installs it)")
        return 2
    body = json.dumps(EXAMPLE_REQUEST).encode()
    script = wrk.write_script(Path(tempfile.mkdtemp()) / "predict.lua", body)
    before, rows_before = counters(args.url), count_rows(args.database)
    url = f"{args.url}/v1/models/{args.model}/predict"
    command = wrk.command(binary, url, script, args.connections, args.seconds)
    print(f"wrk: {args.connections} connections for {args.seconds:g} s against {url}")
    load = wrk.parse_output(subprocess.run(command, capture_output=True, text=True).stdout)
    time.sleep(args.settle)
    after, rows_after = counters(args.url), count_rows(args.database)
    delta = {name: after[name] - before[name] for name in COUNTERS}
    figures = {
        "connections": args.connections,
        "seconds": round(load.duration_s, 1),
        "answered_2xx": load.ok,
        "non_2xx": load.non2xx,
        "socket_errors": load.socket_errors,
        "requests_per_s": round(load.requests / load.duration_s),
        "p50_ms": round(load.p50_ms, 2),
        "p99_ms": round(load.p99_ms, 2),
        "rows_added": None if rows_before is None else rows_after - rows_before,
        **{f"{name}_rows": int(value) for name, value in delta.items()},
    }
    print(json.dumps(figures, indent=1))
    # requests answered after wrk's clock stopped are logged but not in its count
    ok = kept_up(load.ok, delta, figures["rows_added"], in_flight=args.connections)
    print("the writer kept up: 0 dropped" if ok else "ROWS MISSING or dropped")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0 if ok else 1


def kept_up(answered: int, delta: dict[str, float], rows_added: int | None, in_flight: int) -> bool:
    """Nothing dropped, and every answer logged (written, or spilled to come back by replay)."""
    logged = delta["written"] + delta["spilled"] - answered
    if delta["dropped"] != 0 or not 0 <= logged <= in_flight:
        return False
    return rows_added is None or 0 <= rows_added - answered <= in_flight + delta["spilled"]
