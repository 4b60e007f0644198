"""The compression benchmark's report: one table per model, the machine, the goals.

The figures are the run's own; the prose around them in docs/compression.md is
written by hand and never touched (bench/docs_section.py).
"""

from __future__ import annotations

from typing import Any

from bench.compression_models import VERSIONS
from bench.docs_section import DocsSection

DOCS = DocsSection("bench-compression", "## Measured")
COMMAND = (
    "python -m bench compression --docs docs/compression.md --json docs/bench-compression.json"
)


def _kb(size: int) -> str:
    return f"{size / 1024:,.1f} KiB" if size < 2**20 else f"{size / 2**20:,.2f} MiB"


def _table(model: dict[str, Any]) -> list[str]:
    versions = model["versions"]
    base = versions[1]
    lines = [
        f"**{model['name']}** ({model['params']:,} parameters)",
        "",
        "| version | size | vs SavedModel | load ms | rows/s b1 | rows/s b64 "
        "| c1 req/s | c1 p50 / p99 ms | c16 req/s | c16 p50 / p99 ms | AUC delta |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for version, mode in VERSIONS.items():
        row = versions[version]
        served = row["served"]
        metric = row["metric"]
        delta = f"{metric['quantized'] - metric['float']:+.4f}" if metric is not None else "(ref.)"
        ratio = "(ref.)" if version == 1 else f"{base['bytes'] / row['bytes']:.1f}x smaller"
        lines.append(
            f"| {mode} | {_kb(row['bytes'])} | {ratio} "
            f"| {row['load_ms']:.1f} | {row['rows_per_s'][1]:,.0f} | {row['rows_per_s'][64]:,.0f} "
            f"| {served[1]['requests_per_s']:,.0f} "
            f"| {served[1]['p50_ms']:.2f} / {served[1]['p99_ms']:.2f} "
            f"| {served[16]['requests_per_s']:,.0f} "
            f"| {served[16]['p50_ms']:.2f} / {served[16]['p99_ms']:.2f} | {delta} |"
        )
    demo_metric = versions[4]["metric"]
    lines += ["", _goals(model["name"], base, versions[4], demo_metric)]
    return lines


def _goals(name: str, base: dict, int8: dict, metric: dict | None) -> str:
    smaller = base["bytes"] / int8["bytes"]
    faster = int8["rows_per_s"][1] / base["rows_per_s"][1]
    drop = metric["drop"] if metric is not None else float("nan")
    return (
        f"int8 vs SavedModel ({name}): {smaller:.1f}x smaller (goal >= 3x), "
        f"{faster:.1f}x the rows/s at batch 1 in-process (goal > 1x), AUC drop {drop:.4f} "
        f"on {metric['rows'] if metric else 0:,} held-out rows"
        + (" (goal <= 0.005)" if name == "ctr" else "")
        + "."
    )


def report(results: list[dict[str, Any]], run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    m = run["machine"]
    steal = run["steal"]
    lines = [
        f"Measured {run['measured_at']} with `{COMMAND}`.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}, Linux {m['kernel']}; load average before "
        f"{run['load_before'][0]:.2f}, after {run['load_after'][0]:.2f}; CPU steal "
        + (f"{steal * 100:.1f}%" if steal is not None else "unknown")
        + f"; run took {run['seconds']} s. The machine is shared with other engineers' "
        "test runs: a load average above about 1 means another process competed for "
        "the 2 cores during the run.",
        "",
        "Columns: size on disk (SavedModel: `saved_model.pb` + `variables/`; TF Lite: "
        "`model.tflite`); load ms, the graph tier's loader in-process (median of 3); rows/s "
        "in-process by one thread at batch 1 and 64; c1/c16: `graph_service "
        "--prefer_tflite_model=true`, one-row gRPC Predicts pinned to the version, "
        "closed loop at concurrency 1 and 16; AUC delta: quantized minus float on the "
        "held-out labelled rows (`export --eval`).",
        "",
    ]
    for model in results:
        lines += [*_table(model), ""]
    data = {"run": run, "models": results}
    return "\n".join(lines).rstrip() + "\n", data
