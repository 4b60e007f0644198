"""``python -m bench stack``: tierkit side by side with the recipes users run today.

One run on one machine: each system (tierkit over gRPC and over REST, the Flask
recipe in one and in two tiers, a KServe transformer, and a FastAPI ceiling;
see ``bench.stack_systems``) is started on free loopback ports, its first
answer is checked (the model-serving ones must agree on the sample record's
score within 1e-4), then it is driven with the demo request at each
concurrency (default 1, 16, 64) for a warmup and a fixed measured time, while
its processes are metered, and stopped. tierkit's stack also gets the hot
reload measurement while it runs; a separate graph tier the memory per model
version. Progress goes to stderr; the markdown report to stdout and, unless
``--no-docs``, between the markers in docs/benchmarks.md with a chart in
docs/img/bench-stack.png and the raw figures in docs/bench-stack.json (what
``python -m bench capacity`` reads).

A default run takes about ``systems x levels x (warmup + duration)`` plus
about 15 s per system start: 6 x 3 x 12 s + 90 s + 30 s, some five minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import http_load, machine, stack_report, wrk
from bench.stack_lifecycle import measure_hot_reload, measure_memory_per_version, start_and_wait
from bench.stack_processes import ProcessTreeSampler, StartFailed, stop_all
from bench.stack_repository import DemoModel, find_demo
from bench.stack_systems import (
    BUILDERS,
    ORDER,
    REPO,
    SCORED,
    StackOptions,
    SystemSpec,
    pick,
)

AGREEMENT = 1e-4
RELOAD_SYSTEMS = ("tierkit-grpc", "tierkit-rest")  # the first one measured gets the reload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="measured seconds per cell (wrk: whole seconds)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per cell")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument(
        "--systems",
        default=",".join(ORDER),
        help=f"comma-separated subset of: {', '.join(ORDER)}",
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or force one",
    )
    parser.add_argument(
        "--lifecycle",
        default="reload,memory",
        help="extra measurements: reload, memory (comma-separated) or none",
    )
    parser.add_argument("--reloads", type=int, default=3, help="versions published for reload")
    parser.add_argument("--logic-workers", type=int, default=1, help="logic tier (and ceiling)")
    parser.add_argument("--flask-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--flask-predict",
        choices=("predict", "predict_on_batch"),
        default="predict",
        help="the one-tier Flask recipe's Keras call (default predict, as tutorials write it)",
    )
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds per start")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--no-docs", action="store_true", help="print only; write no docs")
    parser.add_argument(
        "--docs",
        type=Path,
        default=REPO / "docs" / "benchmarks.md",
        help="markdown file whose bench-stack markers receive the report",
    )
    parser.add_argument(
        "--chart", type=Path, default=REPO / "docs" / "img" / "bench-stack.png", help="PNG chart"
    )
    parser.add_argument(
        "--raw", type=Path, default=REPO / "docs" / "bench-stack.json", help="raw figures with docs"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} bench stack: {message}", file=sys.stderr, flush=True)


class _Stopped(Exception):
    pass


def _on_signal(signum: int, _frame: object) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _parse(args: argparse.Namespace) -> tuple[list[int], list[str], set[str]]:
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"bench stack: --concurrency {args.concurrency!r}: integers") from None
    if not levels or min(levels) < 1:
        raise SystemExit("bench stack: --concurrency needs levels >= 1")
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in BUILDERS]
    if unknown or not wanted:
        raise SystemExit(
            f"bench stack: unknown system(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ORDER)}"
        )
    lifecycle = {p.strip() for p in args.lifecycle.split(",") if p.strip()} - {"none"}
    if lifecycle - {"reload", "memory"}:
        raise SystemExit("bench stack: --lifecycle takes reload, memory or none")
    return levels, [s for s in ORDER if s in wanted], lifecycle


def command_line() -> str:
    """The command as typed: ``./scripts/bench ...`` when that script launched us."""
    launcher = os.environ.get("TIERKIT_BENCH_LAUNCHER")
    if launcher and sys.argv[1:2] == ["stack"]:
        return shlex.join([launcher, *sys.argv[2:]])
    return shlex.join(["python", "-m", "bench", *sys.argv[1:]])


def run(args: argparse.Namespace) -> int:
    levels, names, lifecycle = _parse(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    cell_s = args.warmup + args.duration
    estimate = len(names) * (len(levels) * cell_s + 15) + 30 * len(lifecycle)
    _say(
        f"{len(names)} systems x {len(levels)} levels x ({args.warmup:g} + {args.duration:g} s); "
        f"about {estimate / 60:.0f} min; work directory {workdir}"
    )
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    started_wall, started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.monotonic()
    load_before = machine.load_average()
    systems: list[dict[str, Any]] = []
    extras: dict[str, Any] = {"hot_reload": None, "memory_per_version": None}
    load = None
    generator: dict[str, str] = {}
    try:
        demo = find_demo(REPO, workdir)
        _say(f"demo model: {demo.version_dir.relative_to(REPO)} and {demo.model_h5.name}")
        load = http_load.choose(args.load, workdir)
        generator = {"name": load.name, "description": load.describe()}
        if load.name == "wrk":
            generator["timeout_s"] = wrk.TIMEOUT_S
        _say(f"load generator: {generator['description']}")
        body = json.dumps(_record()).encode()
        options = StackOptions(args.logic_workers, args.flask_workers, args.flask_predict)
        reference: list[tuple[str, float]] = []
        reload_left = "reload" in lifecycle
        for name in names:
            reload_here = reload_left and name in RELOAD_SYSTEMS
            result = _measure_system(
                name,
                demo,
                body,
                options,
                levels,
                args,
                load,
                workdir,
                reference,
                extras,
                reload_here,
            )
            reload_left = reload_left and not (reload_here and not result.get("failed"))
            systems.append(result)
        if "memory" in lifecycle:
            _say("memory per model version: one graph tier, 1 then 2 versions")
            try:
                extras["memory_per_version"] = measure_memory_per_version(
                    demo, workdir / "memory", args.start_timeout, _say
                )
            except StartFailed as err:
                _say(str(err))
    except (KeyboardInterrupt, _Stopped) as why:
        _say(f"interrupted ({why or 'Ctrl-C'}): stopped; nothing written")
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if load is not None:
            load.close()
        if args.keep:
            _say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    data = {
        "format": "tierkit.bench-stack/1",
        "command": command_line(),
        "started": started_wall,
        "elapsed_s": round(time.monotonic() - started, 1),
        "machine": machine.describe(),
        "load_average_before": load_before,
        "load_average_after": machine.load_average(),
        "load_generator": generator,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrency": levels,
        "reference_score": reference[0][1] if reference else None,
        "systems": systems,
        **extras,
    }
    _write(data, args)
    failed = [s["name"] for s in systems if s.get("failed")]
    if failed:
        _say(f"failed: {', '.join(failed)} (see above)")
    return 1 if failed else 0


def _record() -> dict[str, Any]:
    from logic_service.features.ctr import EXAMPLE_REQUEST

    return dict(EXAMPLE_REQUEST)


def _write(data: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2))
    if args.no_docs:
        print(stack_report.render(data, chart=None))
        return
    chart = os.path.relpath(args.chart, args.docs.parent)
    markdown = stack_report.render(data, chart=chart)
    print(markdown)
    stack_report.write_chart(data, args.chart)
    stack_report.write_docs(args.docs, markdown)
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(data, indent=2))
    _say(f"wrote {args.docs}, {args.chart} and {args.raw}")


def _check_answer(spec: SystemSpec, answer: Any, reference: list[tuple[str, float]]) -> float:
    """The score in the first answer; StartFailed when implausible or off the others'."""
    score = pick(answer, spec.score_path)
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise StartFailed(f"{spec.label}: first answer has no numeric score: {str(answer)[:300]}")
    if not 0.0 <= score <= 1.0:
        raise StartFailed(f"{spec.label}: score {score} is not a probability")
    if spec.name in SCORED:
        if reference:
            who, expected = reference[0]
            if abs(score - expected) > AGREEMENT:
                raise StartFailed(
                    f"{spec.label}: score {score:.6f} differs from {who}'s {expected:.6f} "
                    f"by more than {AGREEMENT:g} on the same record: not the same model/features"
                )
        else:
            reference.append((spec.name, float(score)))
    return float(score)


def _measure_system(
    name: str,
    demo: DemoModel,
    body: bytes,
    options: StackOptions,
    levels: list[int],
    args: argparse.Namespace,
    load,
    workdir: Path,
    reference: list[tuple[str, float]],
    extras: dict[str, Any],
    reload_here: bool,
) -> dict[str, Any]:
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    spec = BUILDERS[name](demo, home, options)
    result: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "description": spec.description,
        "cold_start_s": None,
        "score": None,
        "failed": None,
        "cells": [],
    }
    _say(f"{spec.label}: starting {', '.join(c.label for c in spec.children)}")
    sampler = None
    try:
        cold, answer = start_and_wait(spec, body, args.start_timeout)
        result["cold_start_s"] = round(cold, 2)
        result["score"] = _check_answer(spec, answer, reference)
        _say(f"{spec.label}: first 200 after {cold:.1f} s, score {result['score']:.6f}")
        sampler = ProcessTreeSampler(spec.children)
        for level in levels:
            if args.warmup > 0:
                load.run(spec.port, spec.path, body, level, args.warmup)
            sampler.begin_window()
            figures = load.run(spec.port, spec.path, body, level, args.duration)
            usage = sampler.end_window()
            result["cells"].append(
                {
                    "concurrency": level,
                    "rate": round(figures.rate, 2),
                    "ok": figures.ok,
                    "errors": figures.errors,
                    "error_samples": figures.error_samples,
                    "duration_s": round(figures.duration_s, 3),
                    "p50_ms": _round(figures.p50_ms),
                    "p95_ms": _round(figures.p95_ms),
                    "p99_ms": _round(figures.p99_ms),
                    "client_cpu_s": round(figures.client_cpu_s, 2),
                    "cpu_s": usage.cpu_s,
                    "peak_rss_mb": usage.peak_rss_mb,
                }
            )
            _say(
                f"{spec.label} c={level}: {figures.rate:,.0f} req/s, p50 {figures.p50_ms:.2f} ms, "
                f"p99 {figures.p99_ms:.2f} ms, {figures.errors} errors"
            )
        if reload_here:
            _say(f"{spec.label}: hot reload, {args.reloads} new versions")
            extras["hot_reload"] = {
                "system": spec.label,
                **measure_hot_reload(spec, demo, body, args.reloads, _say),
            }
    except (StartFailed, RuntimeError, TimeoutError, OSError) as err:
        result["failed"] = str(err) or type(err).__name__
        _say(f"{spec.label} FAILED:\n{err}")
    finally:
        if sampler is not None:
            sampler.close()
        stop_all(spec.children)
    return result


def _round(value: float) -> float | None:
    return None if value != value else round(value, 3)
