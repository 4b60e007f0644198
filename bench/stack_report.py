"""The stack benchmark's report: markdown, its place in docs/benchmarks.md, and the chart.

Everything here works from the raw figures (the JSON ``python -m bench stack
--json`` writes), so a report can be re-rendered, tested on fixed numbers, and
checked against the file it came from. The markdown lands between
``<!-- bench-stack:begin -->`` and ``<!-- bench-stack:end -->`` in
docs/benchmarks.md; the rest of that file is left exactly as it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.docs_section import DocsSection

SECTION = "## Side by side: tierkit and the recipes users run today"
DOCS = DocsSection("bench-stack", SECTION)
BEGIN, END = DOCS.begin, DOCS.end
BASELINE = "tierkit-grpc"
PEERS = ("flask-one-tier", "flask-two-tier", "kserve")  # the recipes (not tierkit, not the bound)


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _system(data: dict, name: str) -> dict | None:
    return next((s for s in data["systems"] if s["name"] == name), None)


def _cell(system: dict | None, level: int) -> dict | None:
    if not system or system.get("failed"):
        return None
    return next((c for c in system["cells"] if c["concurrency"] == level), None)


def _by_process(values: dict[str, float], digits: int) -> str:
    if not values:
        return "n/a"
    parts = [f"{label} {value:,.{digits}f}" for label, value in values.items()]
    total = sum(values.values())
    return " / ".join(parts) + (f" (sum {total:,.{digits}f})" if len(values) > 1 else "")


def render(data: dict, chart: str | None = "img/bench-stack.png") -> str:
    """The markdown of one run (``chart``: the PNG's path relative to the document)."""
    machine = data["machine"]
    before, after = data["load_average_before"], data["load_average_after"]
    generator = data["load_generator"]
    lines = [
        f"Measured {data['started']} with `{data['command']}` (took {data['elapsed_s']:.0f} s). "
        f"Load generator: **{data['load_generator']['name']}** -- "
        f"{data['load_generator']['description']}.",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"Python {machine['python']}, Linux {machine['kernel']}; load average (1 min) "
        f"before {before[0]:.2f}, after {after[0]:.2f}. The load generator shares these cores "
        "with the system it measures.",
        "",
        "Every cell: N connections (N = concurrency; kept alive where the server allows, "
        "gunicorn's sync workers close theirs after each answer) POSTing the demo record "
        f"(`logic_service.features.ctr.EXAMPLE_REQUEST`) in a closed loop for "
        f"{data['duration_s']:g} s after {data['warmup_s']:g} s of warmup; requests/s counts "
        "2xx answers; errors are non-2xx answers plus socket errors"
        + (
            f" (wrk counts a request unanswered after {generator['timeout_s']:g} s as one)"
            if generator.get("timeout_s")
            else ""
        )
        + ". CPU seconds and peak RSS "
        "are per process of the system (psutil over its process tree, sampled every 0.2 s) "
        "during the measured window. Every system's first answer was checked before it was "
        "measured: the model-serving ones agree on the sample record's score within 1e-4"
        + (
            f" ({data['reference_score']:.6f})." if data.get("reference_score") is not None else "."
        ),
        "",
    ]
    if chart:
        lines += [f"![requests/s and p99 per system and concurrency]({chart})", ""]
    lines += [*_throughput_table(data), "", *_ratio_table(data), "", *_lifecycle(data)]
    lines += ["", *_targets(data), "", "Systems:", ""]
    for system in data["systems"]:
        lines.append(f"- **{system['label']}** (`{system['name']}`): {system['description']}")
    for note in data.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines)


def _throughput_table(data: dict) -> list[str]:
    lines = [
        "| system | concurrency | requests/s | p50 ms | p95 ms | p99 ms | errors "
        "| CPU s by process | peak RSS MB by process | client CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for system in data["systems"]:
        if system.get("failed"):
            reason = system["failed"].splitlines()[0][:160]
            lines.append(f"| {system['label']} | - | failed: {reason} | | | | | | | |")
            continue
        for c in system["cells"]:
            lines.append(
                f"| {system['label']} | {c['concurrency']} | {_f(c['rate'], 0)} "
                f"| {_f(c['p50_ms'])} | {_f(c['p95_ms'])} | {_f(c['p99_ms'])} | {c['errors']} "
                f"| {_by_process(c.get('cpu_s', {}), 1)} "
                f"| {_by_process(c.get('peak_rss_mb', {}), 0)} | {_f(c.get('client_cpu_s'), 1)} |"
            )
    return lines


def _ratio_table(data: dict) -> list[str]:
    base = _system(data, BASELINE)
    levels = data["concurrency"]
    if not base or base.get("failed"):
        return ["Ratios: tierkit (gRPC) was not measured in this run."]
    head = " | ".join(f"c={n}" for n in levels)
    lines = [
        "tierkit (gRPC) against each system: requests/s ratio (tierkit / system; above 1 = "
        "tierkit answers more) and p99 ratio (system / tierkit; above 1 = tierkit's tail is "
        "shorter).",
        "",
        f"| system | requests/s ratio {head} | p99 ratio {head} |",
        "| --- | "
        + " | ".join("---:" for _ in levels)
        + " | "
        + " | ".join("---:" for _ in levels)
        + " |",
    ]
    for system in data["systems"]:
        if system["name"] == BASELINE:
            continue
        rates, tails = [], []
        for level in levels:
            mine, theirs = _cell(base, level), _cell(system, level)
            rates.append(_ratio(mine and mine["rate"], theirs and theirs["rate"]))
            tails.append(_ratio(theirs and theirs["p99_ms"], mine and mine["p99_ms"]))
        lines.append(f"| {system['label']} | " + " | ".join(rates + tails) + " |")
    return lines


def _ratio(top: float | None, bottom: float | None) -> str:
    if not top or not bottom or math.isnan(top) or math.isnan(bottom):
        return "n/a"
    return f"{top / bottom:,.2f}x"


def _lifecycle(data: dict) -> list[str]:
    lines = [
        "| system | cold start s (first process spawned -> first 200 to the demo request) |",
        "| --- | ---: |",
    ]
    for system in data["systems"]:
        lines.append(f"| {system['label']} | {_f(system.get('cold_start_s'))} |")
    reload = data.get("hot_reload")
    if reload:
        each = ", ".join(
            f"{_f(p['seconds'])} s" + (f" ({p['errors']} non-200)" if p["errors"] else "")
            for p in reload["publishes"]
        )
        lines += [
            "",
            f"Hot reload ({reload['system']}, graph tier polling every "
            f"{reload['polling_s']:g} s): {len(reload['publishes'])} new versions published "
            f"atomically one after another; publish -> first answer naming the new version: "
            f"{each}; median {_f(reload['median_s'])} s, max {_f(reload['max_s'])} s; "
            f"{reload['errors']} non-200 answers. One client on one connection: p99 "
            f"{_f(reload['during_p99_ms'])} ms while a version switched "
            f"(n={reload['during_n']}) against {_f(reload['steady_p99_ms'])} ms in the quiet "
            f"2 s before (n={reload['steady_n']}).",
        ]
    memory = data.get("memory_per_version")
    if memory:
        lines += [
            "",
            f"Memory per loaded model version: graph tier RSS {_f(memory['rss_1_version_mb'], 0)}"
            f" MB with 1 version, {_f(memory['rss_2_versions_mb'], 0)} MB with 2 -> "
            f"{_f(memory['per_version_mb'], 1)} MB per version ({memory['how']}).",
        ]
    return lines


def targets(data: dict) -> list[tuple[str, str, bool | None]]:
    """Issue #7's targets: (what, measured, met); met None = not measured in this run."""
    base = _system(data, BASELINE)
    out: list[tuple[str, str, bool | None]] = []

    def rate(name: str, level: int) -> float | None:
        cell = _cell(_system(data, name), level)
        return cell["rate"] if cell and cell["ok"] else None

    def p99(name: str, level: int) -> float | None:
        cell = _cell(_system(data, name), level)
        return cell["p99_ms"] if cell and cell["ok"] else None

    for level in (16, 64):
        if level not in data["concurrency"]:
            for what in (
                "10x the one-tier Flask recipe's requests/s",
                "lower p99 than every recipe",
            ):
                out.append((f"c={level}: {what}", "not in this run", None))
            continue
        mine, flask = rate(BASELINE, level), rate("flask-one-tier", level)
        ok = None if mine is None or flask is None else mine >= 10 * flask
        shown = _ratio(mine, flask)
        out.append((f"c={level}: 10x the one-tier Flask recipe's requests/s", shown, ok))
        tails = {name: p99(name, level) for name in PEERS}
        measured = {k: v for k, v in tails.items() if v is not None}
        mine_p99 = p99(BASELINE, level)
        ok = (
            None
            if mine_p99 is None or not measured
            else all(mine_p99 < v for v in measured.values())
        )
        shown = f"{_f(mine_p99)} ms vs " + (
            ", ".join(f"{k} {_f(v)}" for k, v in measured.items()) or "no recipe measured"
        )
        out.append((f"c={level}: lower p99 than every recipe", shown, ok))
    mine, theirs = rate(BASELINE, 64), rate("kserve", 64)
    ok = None if mine is None or theirs is None else mine >= 2 * theirs
    shown = _ratio(mine, theirs) if 64 in data["concurrency"] else "not in this run"
    out.append(("c=64: 2x the KServe transformer's requests/s", shown, ok))
    cell = _cell(base, 1)
    p50 = cell["p50_ms"] if cell and cell["ok"] else None
    out.append(("c=1: p50 under 3 ms", f"{_f(p50)} ms", None if p50 is None else p50 < 3.0))
    reload = data.get("hot_reload")
    worst = reload["max_s"] if reload and not reload.get("missed") else None
    out.append(
        (
            "hot reload under 2 s (polling 1 s)",
            f"max {_f(worst)} s",
            None if worst is None else worst < 2,
        )
    )
    if reload and reload.get("during_p99_ms") and reload.get("steady_p99_ms"):
        ratio = reload["during_p99_ms"] / reload["steady_p99_ms"]
        out.append(("p99 while a version loads <= 1.5x steady", f"{ratio:.2f}x", ratio <= 1.5))
    else:
        out.append(("p99 while a version loads <= 1.5x steady", "n/a", None))
    cold = base.get("cold_start_s") if base and not base.get("failed") else None
    out.append(
        (
            "cold start of the local stack under 15 s",
            f"{_f(cold)} s",
            None if cold is None else cold < 15,
        )
    )
    return out


def _targets(data: dict) -> list[str]:
    lines = ["Targets of issue #7 (benchmark figures on this machine, not test assertions):", ""]
    for what, shown, met in targets(data):
        verdict = "not measured" if met is None else ("MET" if met else "MISSED")
        lines.append(f"- {what}: {shown} -> {verdict}")
    return lines


def place_in_docs(document: str, markdown: str) -> str:
    """``document`` with ``markdown`` between the markers (the section is added when missing)."""
    return DOCS.place(document, markdown)


def write_docs(path: Path, markdown: str) -> None:
    DOCS.write(path, markdown)


def write_chart(data: dict, path: Path) -> None:
    """Requests/s and p99 per system, one bar per concurrency (log scales: they span 1000x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in data["systems"] if not s.get("failed")]
    levels = data["concurrency"]
    width = 0.8 / max(1, len(levels))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for index, (key, title) in enumerate((("rate", "requests/s"), ("p99_ms", "p99 latency, ms"))):
        ax = axes[index]
        for i, level in enumerate(levels):
            values = []
            for system in systems:
                cell = _cell(system, level)
                value = cell[key] if cell and cell["ok"] else float("nan")
                values.append(value)
            xs = [x + (i - (len(levels) - 1) / 2) * width for x in range(len(systems))]
            bars = ax.bar(xs, values, width, label=f"concurrency {level}")
            ax.bar_label(
                bars, labels=[_short(v) for v in values], fontsize=7, rotation=90, padding=2
            )
        ax.set_xticks(
            range(len(systems)), [s["label"] for s in systems], rotation=25, ha="right", fontsize=8
        )
        ax.set_yscale("log")
        ax.set_title(title + (" (higher is better)" if key == "rate" else " (lower is better)"))
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.25)
    axes[0].legend(fontsize=8)
    machine = data["machine"]
    fig.suptitle(
        f"python -m bench stack: {machine['nproc']} cores ({machine['cpu']}), "
        f"load generator {data['load_generator']['name']}, {data['duration_s']:g} s per cell",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short(value: float) -> str:
    if value != value:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
