"""``python -m bench capacity``: how many replicas a traffic tier needs, from measured figures.

Takes the stack benchmark's raw figures (``docs/bench-stack.json``, written by
``./scripts/bench``, or ``--from`` another run's ``--json``), finds tierkit's
best throughput per busy core among the cells whose p99 met the response
budget (and had no errors), and turns it into replicas for the request rates
teams plan for. "Per busy core" divides requests/s by the CPU the system's own
processes used in that cell (their CPU seconds over the window), not by the
machine's core count: the load generator shared the machine and is not part
of a deployment.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# (requests/s at peak, roughly how many daily active users produce it)
TIERS: tuple[tuple[float, str], ...] = (
    (20, "~0.3M"),
    (80, "~1M"),
    (500, "~10M"),
    (5000, "~300M"),
)


@dataclass(frozen=True)
class Basis:
    """The measured cell the plan rests on."""

    system: str
    concurrency: int
    rate: float
    p99_ms: float
    busy_cores: float

    @property
    def per_core(self) -> float:
        return self.rate / self.busy_cores


@dataclass(frozen=True)
class Row:
    rate: float
    users: str
    replicas: int
    cores: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=REPO / "docs" / "bench-stack.json",
        help="raw figures of python -m bench stack (default docs/bench-stack.json)",
    )
    parser.add_argument("--p99-target-ms", type=float, default=100.0, help="response budget")
    parser.add_argument(
        "--headroom", type=float, default=0.7, help="run at most this share of measured capacity"
    )
    parser.add_argument("--cores-per-replica", type=int, default=2, help="cores of one replica")
    parser.add_argument("--min-replicas", type=int, default=2, help="for availability")
    parser.add_argument("--system", default="tierkit-grpc", help="which system's figures")


def busy_cores(cell: dict[str, Any], fallback: float) -> float:
    """CPU the system's processes used in the cell, in cores; ``fallback`` when unmetered."""
    cpu = sum(cell.get("cpu_s", {}).values())
    duration = cell.get("duration_s") or 0.0
    if cpu <= 0 or duration <= 0:
        return fallback
    return cpu / duration


def best_basis(data: dict[str, Any], system: str, p99_target_ms: float) -> Basis | None:
    """The cell with the most requests/s per busy core whose p99 met the target, error-free."""
    found = next((s for s in data["systems"] if s["name"] == system and not s.get("failed")), None)
    if found is None:
        return None
    fallback = float(data.get("machine", {}).get("nproc") or 1)
    best: Basis | None = None
    for cell in found["cells"]:
        p99 = cell.get("p99_ms")
        if not cell.get("ok") or cell.get("errors") or p99 is None or p99 > p99_target_ms:
            continue
        basis = Basis(system, cell["concurrency"], cell["rate"], p99, busy_cores(cell, fallback))
        if best is None or basis.per_core > best.per_core:
            best = basis
    return best


def plan(per_core: float, headroom: float, cores_per_replica: int, min_replicas: int) -> list[Row]:
    """Replicas (and cores) for each traffic tier."""
    if per_core <= 0 or not 0 < headroom <= 1 or cores_per_replica < 1:
        raise ValueError("per-core throughput, headroom in (0, 1] and cores per replica > 0")
    usable = per_core * cores_per_replica * headroom
    rows = []
    for rate, users in TIERS:
        replicas = max(min_replicas, math.ceil(rate / usable))
        rows.append(Row(rate, users, replicas, replicas * cores_per_replica))
    return rows


def render(
    basis: Basis,
    rows: list[Row],
    *,
    p99_target_ms: float,
    headroom: float,
    cores_per_replica: int,
    min_replicas: int,
    source: str,
) -> str:
    usable = basis.per_core * cores_per_replica * headroom
    lines = [
        f"| peak requests/s | daily active users (roughly) | replicas "
        f"({cores_per_replica} cores each) | cores |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row.rate:,.0f} | {row.users} | {row.replicas} | {row.cores} |")
    lines += [
        "",
        "Assumptions:",
        "",
        f"- Measured basis ({source}): {basis.system} at concurrency {basis.concurrency}, "
        f"{basis.rate:,.0f} requests/s with p99 {basis.p99_ms:.1f} ms (budget "
        f"{p99_target_ms:g} ms), using {basis.busy_cores:.2f} busy cores -> "
        f"{basis.per_core:,.0f} requests/s per core (the best such cell, no errors).",
        f"- A replica is {cores_per_replica} cores running the logic and graph tiers; "
        "throughput scales with cores (more logic workers or replicas), which holds while "
        "the graph tier and the network are not the bottleneck.",
        f"- Headroom: replicas run at most {headroom:.0%} of measured capacity "
        f"({usable:,.0f} requests/s per replica), for bursts, noisy neighbours and one "
        "replica's share during a rolling update.",
        f"- At least {min_replicas} replicas for availability, however small the traffic.",
        "- Peak requests/s from daily active users assume a few predictions per user per "
        "day with the usual daily peak; plan on your own peak rate when you know it.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.source.is_file():
        print(
            f"bench capacity: {args.source} not found: run ./scripts/bench (or "
            "python -m bench stack --json PATH) first",
        )
        return 2
    data = json.loads(args.source.read_text())
    basis = best_basis(data, args.system, args.p99_target_ms)
    if basis is None:
        print(
            f"bench capacity: no {args.system} cell in {args.source} with p99 <= "
            f"{args.p99_target_ms:g} ms and no errors"
        )
        return 1
    rows = plan(basis.per_core, args.headroom, args.cores_per_replica, args.min_replicas)
    machine = data.get("machine", {})
    source = (
        f"{data.get('started', '?')}, {machine.get('nproc', '?')} cores "
        f"{machine.get('cpu', '')}".strip()
    )
    print(
        render(
            basis,
            rows,
            p99_target_ms=args.p99_target_ms,
            headroom=args.headroom,
            cores_per_replica=args.cores_per_replica,
            min_replicas=args.min_replicas,
            source=source,
        )
    )
    return 0
