"""``python -m bench prediction-log``'s figures as markdown, written into docs/prediction_log.md.

The block between ``<!-- bench-prediction-log:begin -->`` and ``...:end -->``
is the run's own output (``bench/docs_section.py``); the prose around it is
written by hand and never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.docs_section import DocsSection

DOCS = DocsSection("bench-prediction-log", "## Measured")
GOAL_READ_P99_MS = 100.0
GOAL_PREDICT_P99_RISE = 0.10
ROWS_PER_HOUR = 3_600_000  # 1,000 requests/s


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _size(value: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} B"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _priority(r: dict) -> str:
    """How the pass ran: SCHED_IDLE, or its nice value (older figures carry no policy)."""
    return "SCHED_IDLE" if r.get("cpu_policy") == "idle" else f"nice {r.get('nice', 10)}"


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"Measured {figures['measured_at']} with `{figures['command']}` "
        f"({figures['rows']:,} rows per database; whole run {figures['runtime_s'] / 60:.1f} min "
        "on a 2-core machine shared with other work, so figures are noisy).",
        "",
        "Reads (one after another, over HTTP except the guardrail read, which is the "
        "canary evaluator's own call in-process):",
        "",
        "| database | read | calls | p50 ms | p99 ms | max ms | p99 < 100 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in figures["results"]:
        for name in ("dashboard summary", "evaluation 1h", "guardrail stats 1h"):
            read = result["reads"][name]
            lines.append(
                f"| {result['backend']} | {name} | {read['n']} | {_ms(read['p50_ms'])} | "
                f"{_ms(read['p99_ms'])} | {_ms(read['max_ms'])} | "
                f"{_verdict(read['p99_ms'] < GOAL_READ_P99_MS)} |"
            )
    lines += [
        "",
        "Retention passes deleting the hour's oldest rows, a minute of rows per pass, "
        "alternating with equally long pauses while predictions run at a paced rate; "
        '"during": requests sent while a pass ran, "steady": those sent between passes '
        "(the same minutes, so the machine's drift falls on both). Each pass runs where the "
        "app runs it (`storage.retention.child_process: true`: a child process under the "
        "CPU policy shown, SCHED_IDLE with `idle_cpu: true` or the nice value shown, and the "
        "lowest best-effort I/O priority; a thread of the bench's own process with "
        "`--in-thread`), the bench's process holding the lease as a serving worker would:",
        "",
        "| database | batch_rows, busy_share | pass runs in | rows deleted | passes, batches "
        "| time in passes s "
        "| predict p99 steady ms "
        "| predict p99 during ms | rise | < +10 % |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in figures["results"]:
        r = result["retention"]
        steady, during = r["steady"]["p99_ms"], r["during"]["p99_ms"]
        rise = during / steady - 1.0
        lines.append(
            f"| {result['backend']} | {r.get('batch_rows', 2000)}, {r.get('busy_share', 0.2):g} | "
            f"{r.get('where', 'thread')}, {_priority(r)} | {r['deleted']:,} | "
            f"{r.get('passes', 1)}, {r['batches']} | {r['pass_s']:.1f} | "
            f"{_ms(steady)} (n={r['steady']['n']}) | {_ms(during)} (n={r['during']['n']}) | "
            f"{rise * 100:+.1f} % | {_verdict(rise < GOAL_PREDICT_P99_RISE)} |"
        )
    lines += [
        "",
        "Disk: bytes a prediction row takes (table and its indexes) by `storage.payloads`, "
        "times 3.6 M rows for an hour at 1,000 requests/s; the aggregates of the built hour "
        "apart (both resolutions, label buckets included; they grow with time buckets, "
        "versions and statuses, not with requests):",
        "",
        "| database | full | sampled (1 %) | none | aggregates of the hour |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for result in figures["results"]:
        per_row = result["disk_per_row"]
        cells = [
            f"{per_row[m]:.0f} B/row = {_size(per_row[m] * ROWS_PER_HOUR)}/h"
            for m in ("full", "sampled", "none")
        ]
        aggregates = _size(result["build"]["aggregate_bytes"])
        lines.append(f"| {result['backend']} | {' | '.join(cells)} | {aggregates} |")
    lines += ["", "The evaluation endpoint's answer over the built hour (AUC from score bins):", ""]
    lines += ["| database | version | arm | requests | feedback | auc | auc_max_error |"]
    lines += ["| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for result in figures["results"]:
        for v in result["reads"]["evaluation answer"]:
            auc = "-" if v["auc"] is None else f"{v['auc']:.4f}"
            bound = "-" if v["auc_max_error"] is None else f"{v['auc_max_error']:.4f}"
            lines.append(
                f"| {result['backend']} | {v['version']} | {v['arm']} | {v['requests']:,} | "
                f"{v['feedback']:,} | {auc} | {bound} |"
            )
    lines += ["", "Building the log (bulk insert of rows, aggregates by the writer's code):", ""]
    lines += ["| database | rows | labelled | seconds |", "| --- | ---: | ---: | ---: |"]
    for result in figures["results"]:
        b = result["build"]
        lines.append(
            f"| {result['backend']} | {b['rows']:,} | {b['labelled']:,} | {b['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(path: Path, markdown: str) -> None:
    DOCS.write(path, markdown)
