"""``python -m bench scaling``: pods and cores of each tier on Kubernetes, from measured figures.

``python -m bench capacity`` plans replicas that run both tiers together; on
Kubernetes they scale apart (deploy/k8s: one Deployment and HPA per tier). This
splits the same measured cell by tier: the stack benchmark meters the CPU
seconds of the logic tier and of the graph tier separately, so requests/s per
busy core of each tier follow from the cell ``bench capacity`` plans on (the
best requests/s per core whose p99 met the budget, without errors). A logic
pod runs one uvicorn worker per requested core (one worker is one process and
uses about one core at most); a graph pod requests ``--graph-cores``. Each pod
runs at most ``--headroom`` of its measured capacity, which is also the HPA's
CPU target, and each tier keeps at least ``--min-replicas`` pods.

``--docs docs/scaling.md`` writes the table into that file's marked block.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.capacity import REPO, TIERS, best_basis
from bench.docs_section import DocsSection

SECTION = DocsSection("bench-scaling", "## Pods per tier")
LOGIC, GRAPH = "logic tier", "graph tier"


@dataclass(frozen=True)
class TierBasis:
    """One tier's share of the measured cell."""

    busy_cores: float
    per_core: float  # requests/s per busy core of this tier
    peak_rss_mb: float


@dataclass(frozen=True)
class Plan:
    rate: float
    logic_pods: int
    logic_workers: int  # = cores requested per logic pod
    graph_pods: int
    graph_cores: int

    @property
    def cores(self) -> int:
        return self.logic_pods * self.logic_workers + self.graph_pods * self.graph_cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=REPO / "docs" / "bench-stack.json",
        help="raw figures of python -m bench stack (default docs/bench-stack.json)",
    )
    parser.add_argument("--system", default="tierkit-grpc", help="which system's figures")
    parser.add_argument("--p99-target-ms", type=float, default=100.0, help="response budget")
    parser.add_argument(
        "--headroom", type=float, default=0.7, help="run at most this share (the HPA target)"
    )
    parser.add_argument("--min-replicas", type=int, default=2, help="pods per tier, at least")
    parser.add_argument(
        "--logic-workers", type=int, default=2, help="workers (= cores) of a logic pod at scale"
    )
    parser.add_argument("--graph-cores", type=int, default=1, help="cores a graph pod requests")
    parser.add_argument("--docs", type=Path, help="write the report into this file's block")


def tier_bases(data: dict[str, Any], system: str, p99_target_ms: float) -> dict[str, TierBasis]:
    """Per-tier requests/s per busy core in the cell ``bench capacity`` plans on."""
    basis = best_basis(data, system, p99_target_ms)
    if basis is None:
        raise ValueError(f"no {system} cell with p99 <= {p99_target_ms:g} ms and no errors")
    found = next(s for s in data["systems"] if s["name"] == system)
    (cell,) = [c for c in found["cells"] if c["concurrency"] == basis.concurrency]
    bases = {}
    for tier in (LOGIC, GRAPH):
        cores = cell["cpu_s"][tier] / cell["duration_s"]
        bases[tier] = TierBasis(cores, cell["rate"] / cores, cell["peak_rss_mb"][tier])
    return bases


def plan(
    bases: dict[str, TierBasis],
    *,
    headroom: float,
    min_replicas: int,
    logic_workers: int,
    graph_cores: int,
) -> list[Plan]:
    if not 0 < headroom <= 1 or min(min_replicas, logic_workers, graph_cores) < 1:
        raise ValueError("headroom in (0, 1], replicas, workers and cores >= 1")
    logic_core = bases[LOGIC].per_core * headroom  # requests/s one logic core carries
    graph_pod = bases[GRAPH].per_core * headroom * graph_cores
    plans = []
    for rate, _users in TIERS:
        # Small tiers: one-worker pods, each able to carry the whole rate alone.
        workers = 1 if rate <= logic_core else logic_workers
        logic_pods = max(min_replicas, math.ceil(rate / (logic_core * workers)))
        graph_pods = max(min_replicas, math.ceil(rate / graph_pod))
        plans.append(Plan(rate, logic_pods, workers, graph_pods, graph_cores))
    return plans


def hpa_max(plans: list[Plan]) -> dict[str, int]:
    """HPA ceilings: twice the largest tier's pods, so a burst of double finds room."""
    top = plans[-1]
    return {LOGIC: 2 * top.logic_pods, GRAPH: 2 * top.graph_pods}


def render(
    bases: dict[str, TierBasis],
    plans: list[Plan],
    *,
    source: str,
    system: str,
    concurrency: int,
    rate: float,
    p99_ms: float,
    p99_target_ms: float,
    headroom: float,
    min_replicas: int,
    graph_worst: float,
) -> str:
    logic, graph = bases[LOGIC], bases[GRAPH]
    small = plans[-2]  # the largest tier planned on one-worker pods
    lines = [
        "| peak requests/s | logic tier: pods x workers (= cores each) | graph tier: pods x "
        "cores | cores requested | logic / graph CPU at peak |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in plans:
        logic_use = p.rate / (logic.per_core * p.logic_pods * p.logic_workers)
        graph_use = p.rate / (graph.per_core * p.graph_pods * p.graph_cores)
        lines.append(
            f"| {p.rate:,.0f} | {p.logic_pods} x {p.logic_workers} | {p.graph_pods} x "
            f"{p.graph_cores} | {p.cores} | {logic_use:.0%} / {graph_use:.0%} |"
        )
    ceilings = hpa_max(plans)
    lines += [
        "",
        f"HPA targets (deploy/k8s/base/autoscaling.yaml): CPU {headroom:.0%} of requests for "
        f"both tiers; logic tier {min_replicas} to {ceilings[LOGIC]} pods, graph tier "
        f"{min_replicas} to {ceilings[GRAPH]} pods (twice the 5,000 requests/s plan).",
        "",
        "Assumptions:",
        "",
        f"- Measured basis ({source}): {system} at concurrency {concurrency}, {rate:,.0f} "
        f"requests/s with p99 {p99_ms:.1f} ms (budget {p99_target_ms:g} ms): the logic tier "
        f"used {logic.busy_cores:.2f} cores -> {logic.per_core:,.0f} requests/s per logic core; "
        f"the graph tier {graph.busy_cores:.2f} cores -> {graph.per_core:,.0f} requests/s per "
        f"graph core. Peak RSS: logic tier {logic.peak_rss_mb:,.0f} MB (one worker), graph "
        f"tier {graph.peak_rss_mb:,.0f} MB.",
        f"- A pod runs at most {headroom:.0%} of that ({logic.per_core * headroom:,.0f} "
        f"requests/s per logic core, {graph.per_core * headroom:,.0f} per graph core): the rest "
        "is for bursts while the HPA adds pods (a logic pod is ready in tens of seconds) and "
        "for one pod's share while a node drains (PodDisruptionBudget: one pod at a time).",
        f"- At least {min_replicas} pods per tier, for availability. Where one one-worker pod "
        "carries the whole rate, logic pods run one worker (one core); above, two.",
        f"- The graph tier's figure is its cost with the logic tier merging concurrent calls "
        f"(graph.batching); at low load there is nothing to merge and a request costs it more: "
        f"{graph_worst:,.0f} requests/s per graph core at the least, in a cell within the "
        f"budget, so {small.rate:,.0f} requests/s would take {small.rate / graph_worst:.1f} "
        f"of the {small.graph_pods * small.graph_cores} graph cores planned for it; above, the "
        "HPA on the graph tier's CPU adds pods.",
        "- Throughput grows with logic cores (workers, pods) while the graph tier, the "
        "database and the network keep up. The graph tier measured is graph_service with the "
        "demo model, not TensorFlow Serving, and a larger model costs more per request: "
        "measure yours (`locustfile.py` against your deployment) and rerun this with its "
        "figures.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.source.is_file():
        print(f"bench scaling: {args.source} not found: run ./scripts/bench first")
        return 2
    data = json.loads(args.source.read_text())
    report = report_from(
        data,
        system=args.system,
        p99_target_ms=args.p99_target_ms,
        headroom=args.headroom,
        min_replicas=args.min_replicas,
        logic_workers=args.logic_workers,
        graph_cores=args.graph_cores,
    )
    if args.docs:
        document = args.docs.read_text() if args.docs.exists() else ""
        args.docs.write_text(SECTION.place(document, report))
    print(report)
    return 0


def report_from(
    data: dict[str, Any],
    *,
    system: str = "tierkit-grpc",
    p99_target_ms: float = 100.0,
    headroom: float = 0.7,
    min_replicas: int = 2,
    logic_workers: int = 2,
    graph_cores: int = 1,
) -> str:
    basis = best_basis(data, system, p99_target_ms)
    if basis is None:
        raise ValueError(f"no {system} cell with p99 <= {p99_target_ms:g} ms and no errors")
    bases = tier_bases(data, system, p99_target_ms)
    plans = plan(
        bases,
        headroom=headroom,
        min_replicas=min_replicas,
        logic_workers=logic_workers,
        graph_cores=graph_cores,
    )
    machine = data.get("machine", {})
    source = (
        f"{data.get('started', '?')} with `{data.get('command', '?')}`, "
        f"{machine.get('nproc', '?')} cores {machine.get('cpu', '')}".strip()
    )
    return render(
        bases,
        plans,
        source=source,
        system=system,
        concurrency=basis.concurrency,
        rate=basis.rate,
        p99_ms=basis.p99_ms,
        p99_target_ms=p99_target_ms,
        headroom=headroom,
        min_replicas=min_replicas,
        graph_worst=graph_worst_per_core(data, system, p99_target_ms),
    )


def graph_worst_per_core(data: dict[str, Any], system: str, p99_target_ms: float) -> float:
    """The graph tier's least requests/s per busy core among the cells within the budget."""
    found = next(s for s in data["systems"] if s["name"] == system)
    rates = [
        c["rate"] / (c["cpu_s"][GRAPH] / c["duration_s"])
        for c in found["cells"]
        if c.get("ok") and not c.get("errors") and (c.get("p99_ms") or 1e9) <= p99_target_ms
    ]
    return min(rates)
