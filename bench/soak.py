"""The soak: measure capacity, then hold half of it for 10 minutes; no errors, RSS flat.

A benchmark script, not a CI test. It drives a running logic tier (``./scripts/up``
or any other) and watches the resident memory of the processes named by
``--pid`` (graph tier, logic tier and its workers) through ``/proc``::

    python -m bench.soak --url http://127.0.0.1:8000 --model ctr \
        --pid $(pgrep -f graph_service) --pid $(pgrep -f "logic_service serve") \
        --minutes 10

Phases: (1) capacity, closed loop with ``--concurrency`` callers for
``--capacity-s`` seconds; (2) warm-up at the soak rate for ``--warmup-s``
seconds, after which each process's RSS is the baseline; (3) the soak, open
loop at ``--fraction`` of capacity (requests start on a fixed schedule, so a
slow server cannot quietly lower the load). The JSON report counts requests
sent, answered 2xx, failed (by status or exception) and the RSS growth of each
process; the exit status is 0 only when nothing failed and every process grew
less than ``--max-rss-growth``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_BODY = "logic_service.features.ctr:EXAMPLE_REQUEST"


def rss_bytes(pid: int) -> int | None:
    """VmRSS of a live process, None once it is gone (which the soak reports as a failure)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def load_body(spec: str) -> Any:
    """A JSON file path, or ``module:attribute`` naming a record (the demo's example)."""
    if ":" in spec and not Path(spec).exists():
        import importlib

        module, _, attribute = spec.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return json.loads(Path(spec).read_text())


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    failed: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, outcome: int | str, latency: float) -> None:
        if outcome == 200:
            self.answered += 1
            self.latencies.append(latency)
        else:
            self.failed[str(outcome)] += 1

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

        return {
            "sent": self.sent,
            "answered_2xx": self.answered,
            "failed": dict(self.failed),
            "rate_per_s": round(self.answered / seconds, 1) if seconds else 0.0,
            "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
        }


async def _call(client: httpx.AsyncClient, path: str, body: Any, tally: Tally) -> None:
    tally.sent += 1
    started = time.perf_counter()
    try:
        response = await client.post(path, json=body)
        outcome: int | str = response.status_code
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    tally.add(outcome, time.perf_counter() - started)


async def capacity(client: httpx.AsyncClient, path: str, body: Any, args) -> dict[str, Any]:
    tally = Tally()
    stop = time.monotonic() + args.capacity_s

    async def caller() -> None:
        while time.monotonic() < stop:
            await _call(client, path, body, tally)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    return tally.summary(time.monotonic() - started)


async def open_loop(
    client: httpx.AsyncClient, path: str, body: Any, rate: float, seconds: float, tally: Tally
) -> float:
    """Start ``rate`` requests a second on a fixed schedule for ``seconds``."""
    interval = 1.0 / rate
    started = time.monotonic()
    tasks: set[asyncio.Task] = set()
    n = 0
    while (now := time.monotonic()) < started + seconds:
        due = started + n * interval
        # always yield: behind schedule, a loop that never awaits would only create tasks
        await asyncio.sleep(max(0.0, due - now))
        task = asyncio.create_task(_call(client, path, body, tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.gather(*tasks)
    return time.monotonic() - started


async def soak(args) -> dict[str, Any]:
    body = load_body(args.body)
    path = f"/v1/models/{args.model}/predict"
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.concurrency * 4)
    async with httpx.AsyncClient(
        base_url=args.url, timeout=args.timeout_s, limits=limits, headers=headers
    ) as client:
        measured = await capacity(client, path, body, args)
        rate = max(1.0, measured["rate_per_s"] * args.fraction)
        await open_loop(client, path, body, rate, args.warmup_s, Tally())
        baseline = {pid: rss_bytes(pid) for pid in args.pid}
        samples: dict[int, list[int | None]] = {pid: [] for pid in args.pid}
        tally = Tally()
        seconds = args.minutes * 60.0

        async def sample() -> None:
            while True:
                await asyncio.sleep(args.sample_s)
                for pid in args.pid:
                    samples[pid].append(rss_bytes(pid))

        sampler = asyncio.create_task(sample())
        took = await open_loop(client, path, body, rate, seconds, tally)
        sampler.cancel()
    processes = {}
    for pid in args.pid:
        end = rss_bytes(pid)
        start = baseline[pid]
        growth = (end - start) / start if start and end else None
        processes[str(pid)] = {
            "rss_start_mb": round((start or 0) / 2**20, 1),
            "rss_end_mb": round((end or 0) / 2**20, 1),
            "rss_max_mb": round(max((s or 0) for s in samples[pid] or [0]) / 2**20, 1),
            "growth": None if growth is None else round(growth, 4),
            "alive": end is not None,
        }
    result = tally.summary(took)
    ok = (
        not result["failed"]
        and result["sent"] == result["answered_2xx"]
        and all(p["alive"] and p["growth"] < args.max_rss_growth for p in processes.values())
    )
    return {
        "capacity": measured,
        "soak_rate_per_s": round(rate, 1),
        "soak_seconds": round(took, 1),
        "soak": result,
        "processes": processes,
        "passed": ok,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="ctr")
    parser.add_argument("--body", default=DEFAULT_BODY, help="JSON file or module:attribute")
    parser.add_argument("--api-key", default="", help="when the logic tier has api_keys")
    parser.add_argument("--pid", type=int, action="append", default=[], help="process to watch")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.5, help="of measured capacity")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--capacity-s", type=float, default=20.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--max-rss-growth", type=float, default=0.05)
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args))
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
