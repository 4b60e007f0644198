"""The prediction log at production volume: reads from its aggregates, and a retention pass.

For each database (SQLite file, and PostgreSQL started from Debian's binaries
as ``tests/support/postgres.py`` does), a log of ``--rows`` predictions over
the last hour (3.6 M = one hour at 1,000 requests/s; one model, three
versions, 1 % labelled) is bulk-inserted with its aggregates
(``bench/prediction_log_data.py``). Then, against a real logic tier
(``python -m logic_service serve``) and graph tier (``python -m graph_service``)
on 127.0.0.1:

- ``GET /dashboard/api/summary``, ``GET /v1/models/ctr/evaluation?window=1h``
  and one guardrail read (the canary evaluator's stats of the last hour,
  ``rollout_policy.evaluation_stats``, in this process) are called
  ``--calls`` times one after another: p50 and p99 (goal: p99 < 100 ms);
- predictions are sent at ``--rate`` requests/s while retention passes (this
  process holds the lease as a serving worker would; each pass runs in a
  child process under SCHED_IDLE as the app runs it, niced only with
  ``--no-idle-cpu``, or with ``--in-thread`` in a niced thread of this
  process) delete the hour's oldest ``--delete-minutes`` (5: 300,000 rows)
  a minute of rows per pass, with the default ``storage.retention`` batches and
  pacing, alternating with equally long pauses: p99 of the requests sent
  during a pass against those sent between passes (goal: < +10 %);
- a sample of ``--sample-rows`` rows with each ``storage.payloads`` mode gives
  the disk a row takes, so the disk per hour at 1,000 requests/s.

``--docs`` writes the tables between the markers of docs/prediction_log.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.prediction_log_data import (
    MODEL,
    build_log,
    checkpoint,
    database_bytes,
    table_bytes,
)
from bench.prediction_log_report import render, write_docs
from logic_service.routing.rollout_policy import CANARY_ARMS, evaluation_stats
from logic_service.settings.storage import RetentionSettings, StorageSettings
from logic_service.storage.database import open_database
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.retention import Retention
from logic_service.storage.retention_process import run_in_child

ROOT = Path(__file__).resolve().parents[1]
AGGREGATES = ("prediction_buckets", "prediction_label_buckets")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=3_600_000, help="rows in the hour")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument("--calls", type=int, default=200, help="calls per read endpoint")
    parser.add_argument("--rate", type=float, default=200.0, help="predictions per second")
    parser.add_argument(
        "--delete-minutes", type=float, default=5.0, help="the pass deletes the hour's oldest"
    )
    parser.add_argument("--batch-rows", type=int, default=None, help="retention batch_rows")
    parser.add_argument("--busy-share", type=float, default=None, help="retention busy_share")
    parser.add_argument("--nice", type=int, default=None, help="retention nice (default 10)")
    parser.add_argument(
        "--no-idle-cpu", action="store_true", help="child pass niced only, not SCHED_IDLE"
    )
    parser.add_argument(
        "--in-thread",
        dest="child_process",
        action="store_false",
        help="run passes in a thread of the bench's process (child_process: false)",
    )
    parser.add_argument("--sample-rows", type=int, default=100_000, help="rows per payload mode")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--docs", type=Path, default=None, help="docs/prediction_log.md")
    parser.add_argument("--json", type=Path, default=None, help="the figures as JSON")


def _say(text: str) -> None:
    print(text, flush=True)


def _tests_support() -> None:
    """tests/support (the throwaway PostgreSQL, the graph tier, a model) on the path."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench-log.db'}"
        return
    _tests_support()
    from support.postgres import throwaway_postgres

    with throwaway_postgres() as server:
        yield server.url(server.create_database("bench"))


@contextlib.contextmanager
def stack(url: str, workdir: Path) -> Iterator[str]:
    """Graph tier serving ``ctr`` version 1, logic tier on the log's database; its base URL."""
    _tests_support()
    from support.ctr_versions import publish_tensor_model
    from support.graph_tier import start_graph_server
    from support.ports import free_port
    from support.processes import Process

    repo = workdir / "models"
    if not (repo / MODEL / "1").exists():
        publish_tensor_model(repo, MODEL, 1)
    config = (
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{repo / MODEL}" '
        'model_platform: "tensorflow" } }\n'
    )
    graph = start_graph_server(workdir / "graph", repo, config, wait_models=[MODEL])
    port = free_port()
    logic_config = workdir / "logic.yaml"
    logic_config.write_text(
        f"port: {port}\nmodel_repository: {repo}\nmodels: [{{name: {MODEL}}}]\n"
        f"graph:\n  grpc_address: {graph.grpc_target}\n"
        f"log:\n  dir: {workdir / 'logs'}\n  console: false\n"
        f"storage:\n  database_url: '{url}'\n  retention:\n    enabled: false\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(logic_config)],
        workdir / "logic.out",
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"logic tier did not start:\n{process.tail()}")
            time.sleep(0.3)
        yield base
    finally:
        process.stop()
        graph.stop()


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


def _timed(call, calls: int) -> dict[str, float]:
    for _ in range(5):
        call()
    seconds = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return _percentiles(seconds)


def measure_reads(base: str, engine: Any, since: float, calls: int) -> dict[str, Any]:
    client = httpx.Client(base_url=base, timeout=30)

    def get(path: str) -> None:
        response = client.get(path)
        response.raise_for_status()

    stats = evaluation_stats(engine)
    check = stats(MODEL, since, CANARY_ARMS)  # the canary evaluator's read
    assert sum(s.requests for s in check.values()) > 0, "the guardrail read saw no traffic"
    figures = {
        "dashboard summary": _timed(lambda: get("/dashboard/api/summary"), calls),
        "evaluation 1h": _timed(lambda: get(f"/v1/models/{MODEL}/evaluation?window=1h"), calls),
        "guardrail stats 1h": _timed(lambda: stats(MODEL, since, CANARY_ARMS), calls),
    }
    body = client.get(f"/v1/models/{MODEL}/evaluation?window=1h").json()
    figures["evaluation answer"] = [
        {k: v.get(k) for k in ("version", "arm", "requests", "feedback", "auc", "auc_max_error")}
        for v in body["versions"]
    ]
    client.close()
    return figures


def _load(base: str, rate: float, stop: threading.Event, out: list, threads: int = 4):
    """Paced predictions from ``threads`` clients until ``stop``: (start, seconds) into ``out``."""

    def client_loop() -> None:
        interval = threads / rate
        with httpx.Client(base_url=base, timeout=10) as client:
            due = time.perf_counter()
            while not stop.is_set():
                began = time.perf_counter()
                response = client.post(f"/v1/models/{MODEL}/predict", json={"x": [1.0, 2.0, 3.0]})
                if response.status_code == 200:
                    out.append((began, time.perf_counter() - began))
                due += interval
                time.sleep(max(0.0, due - time.perf_counter()))

    workers = [threading.Thread(target=client_loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def _steady_load(base: str, rate: float, seconds: float) -> list:
    stop, out = threading.Event(), []
    workers = _load(base, rate, stop, out)
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return out


def measure_retention(base: str, engine: Any, args: argparse.Namespace, end: float) -> dict:
    """Prediction latency with and without a retention pass, interleaved in the same minutes.

    The hour's oldest ``--delete-minutes`` go one minute of rows per pass; the
    passes alternate with pauses as long as the last pass took. A request
    counts as "during" when it was sent while a pass ran, "steady" otherwise:
    both samples come from the same stretch of time, so a shared machine's
    drift (other work starting or ending) does not land on one side only.
    """
    _steady_load(base, args.rate, 3.0)  # warm-up: connections, first requests
    chosen = {
        "batch_rows": args.batch_rows,
        "busy_share": args.busy_share,
        "nice": args.nice,
        "idle_cpu": False if args.no_idle_cpu else None,
    }
    base_settings = RetentionSettings(**{k: v for k, v in chosen.items() if v is not None})
    url = engine.url.render_as_string(hide_password=False)

    def in_child(owner: str, stopping: threading.Event) -> Any:
        storage = StorageSettings(database_url=url, retention=retention.settings)
        return run_in_child(storage, owner, stopping)

    # as the app runs passes (storage.retention.child_process: true), or in a niced thread
    retention = Retention(engine, base_settings, runner=in_child if args.child_process else None)
    before_bytes = database_bytes(engine)
    stop, sent = threading.Event(), []
    workers = _load(base, args.rate, stop, sent)
    passes: list[tuple[float, float]] = []
    deleted = batches = 0
    checkpointed = True
    policies: set[str] = set()
    for minute in range(1, int(args.delete_minutes) + 1):
        age_days = (time.time() - (end - 3600.0 + minute * 60)) / 86_400
        retention.settings = base_settings.model_copy(update={"predictions_days": age_days})
        began = time.perf_counter()
        report = retention.run_pass_as_configured()  # as the app runs it: a child, SCHED_IDLE
        ended = time.perf_counter()
        passes.append((began, ended))
        deleted += report.predictions
        batches += report.batches
        checkpointed = checkpointed and report.checkpointed
        policies.add(report.cpu_policy or "other")  # a thread: the worker's own policy
        time.sleep(max(1.0, ended - began))  # as long without a pass
    stop.set()
    for worker in workers:
        worker.join()

    def in_pass(start: float) -> bool:
        return any(began <= start <= ended for began, ended in passes)

    return {
        "rate": args.rate,
        "batch_rows": base_settings.batch_rows,
        "busy_share": base_settings.busy_share,
        "where": "child process" if args.child_process else "thread",
        "nice": base_settings.nice,
        "cpu_policy": ",".join(sorted(policies)),
        "steady": _percentiles([seconds for start, seconds in sent if not in_pass(start)]),
        "during": _percentiles([seconds for start, seconds in sent if in_pass(start)]),
        "pass_s": sum(ended - began for began, ended in passes),
        "passes": len(passes),
        "deleted": deleted,
        "batches": batches,
        "checkpointed": checkpointed,
        "bytes_before": before_bytes,
        "bytes_after": database_bytes(engine),
    }


def disk_per_row(kind: str, workdir: Path, rows: int) -> dict[str, float]:
    """Bytes a row takes with each payload mode (table and indexes; aggregates apart)."""
    figures = {}
    for mode in ("full", "sampled", "none"):
        with database(kind, workdir / f"disk-{mode}") as url:
            engine = open_database(url)
            build_log(engine, rows, time.time(), PayloadPolicy(mode, 0.01), say=lambda _: None)
            checkpoint(engine)
            figures[mode] = table_bytes(engine, ("predictions",)) / rows
            engine.dispose()
    return figures


def run_backend(kind: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"backend": kind}
    with database(kind, workdir) as url:
        engine = open_database(url)
        end = time.time()
        _say(f"{kind}: building {args.rows:,} rows")
        built = build_log(engine, args.rows, end, PayloadPolicy("none"), say=_say)
        checkpoint(engine)
        result["build"] = {
            "rows": built.rows,
            "labelled": built.labelled,
            "seconds": built.seconds,
            "log_bytes": table_bytes(engine, ("predictions",)),
            "aggregate_bytes": table_bytes(engine, AGGREGATES),
        }
        _say(f"{kind}: built in {built.seconds:.0f} s; starting the stack")
        with stack(url, workdir) as base:
            result["reads"] = measure_reads(base, engine, end - 3600.0, args.calls)
            _say(f"{kind}: reads {json.dumps(result['reads'], default=str)[:400]}")
            result["retention"] = measure_retention(base, engine, args, end)
            _say(f"{kind}: retention {result['retention']}")
        engine.dispose()
    _say(f"{kind}: disk per row, {args.sample_rows:,} rows per payload mode")
    result["disk_per_row"] = disk_per_row(kind, workdir, args.sample_rows)
    return result


def run(args: argparse.Namespace) -> int:
    began = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="tierkit-bench-plog-") as tmp:
        root = args.workdir or Path(tmp)
        for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
            results.append(run_backend(kind, root / kind, args))
    figures = {
        "command": " ".join(["python -m bench prediction-log", *sys.argv[2:]]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runtime_s": time.time() - began,
        "rows": args.rows,
        "results": results,
    }
    markdown = render(figures)
    print(markdown)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if args.docs is not None:
        write_docs(args.docs, markdown)
    return 0
