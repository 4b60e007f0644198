"""``python -m bench graph``: the graph tier, side by side with its two bounds.

For concurrency 1, 8 and 32 it measures predictions/s and p50/p95/p99 of

- the model in-process (session path, no network), with and without batching:
  the compute ceiling;
- no-op gRPC and REST servers of the same protocol stack: the protocol ceiling;
- ``python -m graph_service`` over gRPC and REST, without and with
  ``--enable_batching``;
- at the highest concurrency, the gRPC no-op awaiting the batcher (trivial
  ``run``), then the batcher with the model's session: where the distance from
  the ceiling to graph_service goes;
- goal 1 once more in pairs: the no-op and the batched server both up, short
  cells turn about, the median of the rounds' ratios (paired_ceiling.py), so the
  machine's drift between two cells minutes apart does not decide the goal;

then p99 of requests pinned to a serving version while a second version of the
same model loads, against the steady state around the loads, over gRPC and REST.
Clients run in their own process; every cell runs a fixed time after a warmup.
The whole run takes about ``26 x (warmup + duration)`` seconds plus server
start-ups, the paired rounds and the version loads (48 per protocol and level,
about 80 s each): about twelve minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import machine
from bench.docs_section import DocsSection
from bench.graph_model import (
    SIGNATURE,
    ModelUnderTest,
    constant_responses,
    grpc_request,
    prepare_model,
    rest_body,
)
from bench.graph_server import GraphServer, free_port
from bench.in_process import measure_batched, measure_threads
from bench.load_client import LoadGenerator, LoadResult, LoadSpec
from bench.noop_servers import NoopServers, NoopSpec
from bench.paired_ceiling import PairedResult, measure_pairs
from bench.version_load import VersionLoadResult, measure_busy_core, measure_version_load
from graph_service.batching.batching_config import load_batching_parameters

REPO = Path(__file__).resolve().parent.parent
DOCS = DocsSection("bench-graph", "## Graph tier: figures")

# The batching configuration under test (also written into docs/benchmarks.md).
# Tuned on the 2-CPU bench machine: a 1 ms timeout lets batches fill (about +55%
# at concurrency 32 over a timeout of 0, whose many tiny batches each cost a
# session call and a loop wake-up) for about 1.3 ms more latency at concurrency 1;
# 16 rows closes a batch as soon as half of 32 callers are in.
BATCHING_PARAMETERS = """\
max_batch_size { value: 16 }
batch_timeout_micros { value: 1000 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 1 }
"""


@dataclass(frozen=True)
class Cell:
    path: str
    protocol: str
    batching: bool
    concurrency: int
    result: LoadResult

    @property
    def rate(self) -> float:
        return self.result.completed / self.result.duration

    def percentile_ms(self, q: float) -> float:
        lat = self.result.latencies
        return float(np.percentile(lat, q) * 1000) if lat.size else float("nan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--model", default="ctr", help="model name in the repository")
    parser.add_argument("--repository", type=Path, default=REPO / "serving_models")
    parser.add_argument("--load-concurrency", default="1,8", help="levels for the version load")
    parser.add_argument(
        "--load-protocols", default="grpc,rest", help="protocols for the version load"
    )
    parser.add_argument("--load-steady", type=float, default=4.0, help="steady seconds before load")
    # 48, not 16: a p99 over the ~3,500 requests of 16 loads moved 0.90x-1.51x between
    # runs of the same code; over the ~11,000 of 48 loads, 1.32x-1.41x (eight runs).
    parser.add_argument("--loads", type=int, default=48, help="versions published during the run")
    parser.add_argument("--load-interval", type=float, default=1.25, help="seconds between them")
    parser.add_argument(
        "--parts",
        default="in-process,noop,breakdown,server,paired,version-load",
        help="comma-separated subset of: in-process, noop, breakdown, server, paired, version-load",
    )
    parser.add_argument(
        "--pair-rounds", type=int, default=6, help="rounds of the paired goal-1 measurement"
    )
    parser.add_argument(
        "--pair-duration", type=float, default=4.0, help="measured seconds per paired cell"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--docs",
        type=Path,
        help="also write the report between the bench-graph markers of this markdown file "
        "(e.g. docs/benchmarks.md)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")


def run(args: argparse.Namespace) -> int:
    levels = [int(c) for c in args.concurrency.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    started = time.time()
    load_before = os.getloadavg()
    cpu_before = machine.cpu_times()
    try:
        cells, loads, controls, paired = _run_all(args, levels, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    steal = machine.steal_share(cpu_before, machine.cpu_times())
    report = _report(
        args, cells, loads, load_before, time.time() - started, steal, controls, paired
    )
    print(report["markdown"])
    if args.json:
        args.json.write_text(json.dumps(report["data"], indent=2))
    if args.docs:
        DOCS.write(args.docs, report["markdown"])
        _say(f"wrote the report into {args.docs}")
    return 0


def _run_all(
    args, levels: list[int], workdir: Path
) -> tuple[list[Cell], list[VersionLoadResult], list[VersionLoadResult], PairedResult | None]:
    parts = set(args.parts.split(","))
    model = prepare_model(args.repository, args.model, workdir)
    _say(f"model: {model.origin}; input {model.input_name}[1,{model.features}]")
    params_path = workdir / "batching_parameters.txt"
    params_path.write_text(BATCHING_PARAMETERS)
    params = load_batching_parameters(str(params_path))
    cells: list[Cell] = []
    expected = _in_process(model, params, levels, args, cells, "in-process" in parts)
    loads: list[VersionLoadResult] = []
    controls: list[VersionLoadResult] = []
    paired: PairedResult | None = None
    loadgen = LoadGenerator()
    try:
        if "noop" in parts:
            response, body = constant_responses(model, expected)
            ports = (free_port(), free_port())
            noop = NoopServers(NoopSpec(*ports, response, body))
            try:
                _protocol_cells("no-op server", False, ports, model, levels, args, loadgen, cells)
            finally:
                noop.close()
        if "breakdown" in parts:
            _breakdown(model, expected, max(levels), args, loadgen, cells)
        if "server" in parts:
            for batching in (False, True):
                _server_cells(
                    model, batching, params_path, expected, workdir, levels, args, loadgen, cells
                )
        if "paired" in parts:
            paired = _paired(model, expected, params_path, workdir, max(levels), args, loadgen)
        if "version-load" in parts:
            for protocol in args.load_protocols.split(","):
                for level in (int(c) for c in args.load_concurrency.split(",")):
                    _say(
                        f"version load, {protocol} c={level}: "
                        "clients on version 1 while new versions load"
                    )
                    loads.append(
                        measure_version_load(
                            model,
                            workdir,
                            loadgen,
                            concurrency=level,
                            warmup=args.warmup,
                            steady=args.load_steady,
                            loads=args.loads,
                            interval=args.load_interval,
                            protocol=protocol,
                        )
                    )
            lone = [
                s
                for r in loads
                if r.concurrency == 1 and r.protocol == "grpc"
                for s in r.load_seconds
            ]
            busy = float(np.median(lone or [s for r in loads for s in r.load_seconds] or [0.15]))
            _say(f"control c=1: a core kept busy {busy * 1000:.0f} ms at a time, no load")
            controls.append(
                measure_busy_core(
                    model,
                    workdir,
                    loadgen,
                    concurrency=1,
                    warmup=args.warmup,
                    steady=args.load_steady,
                    windows=args.loads,
                    interval=args.load_interval,
                    busy=busy,
                )
            )
    finally:
        loadgen.close()
    return cells, loads, controls, paired


def _paired(model, expected, params_path, workdir, level, args, loadgen) -> PairedResult:
    """Goal 1 again, the no-op and the batched server alternating (paired_ceiling.py)."""
    response, body = constant_responses(model, expected)
    ports = (free_port(), free_port())
    noop = NoopServers(NoopSpec(*ports, response, body))
    flags = _server_flags(model, True, params_path)
    try:
        server = GraphServer(
            flags, workdir / "graph_service-paired.log", model.name, (int(model.version_dir.name),)
        )
    except BaseException:
        noop.close()
        raise
    payload = grpc_request(model)

    def cell(port: int) -> Callable[[], float]:
        spec = LoadSpec("grpc", "127.0.0.1", port, payload, level, args.warmup, args.pair_duration)

        def measure() -> float:
            result = loadgen.run(spec)
            return result.completed / result.duration

        return measure

    try:
        _check_answers(server, model, expected)
        _say(f"paired goal 1: {args.pair_rounds} rounds, no-op and graph_service turn about")
        return measure_pairs(args.pair_rounds, cell(ports[0]), cell(server.grpc_port))
    finally:
        server.close()
        noop.close()


def _breakdown(model, expected, level, args, loadgen, cells) -> None:
    """The gRPC no-op again, awaiting the batcher, then the batcher and the session."""
    response, body = constant_responses(model, expected)
    for stage, label in (("batcher", "no-op + batcher"), ("session", "no-op + batcher + session")):
        ports = (free_port(), free_port())
        spec = NoopSpec(
            *ports,
            response,
            body,
            stage=stage,
            model_dir=model.version_dir,
            signature=SIGNATURE,
            input_name=model.input_name,
            output_name=model.output_name,
            features=model.features,
            batching_parameters=BATCHING_PARAMETERS,
        )
        noop = NoopServers(spec)
        try:
            _protocol_cells(label, True, ports, model, [level], args, loadgen, cells, ("grpc",))
        finally:
            noop.close()


def _server_flags(model, batching: bool, params_path: Path) -> list[str]:
    """graph_service's flags for the model under test (the table's and the pairs')."""
    flags = ["--model_name=" + model.name, f"--model_base_path={model.version_dir.parent}"]
    if batching:
        flags += ["--enable_batching", f"--batching_parameters_file={params_path}"]
    return flags


def _server_cells(model, batching, params_path, expected, workdir, levels, args, loadgen, cells):
    flags = _server_flags(model, batching, params_path)
    log = workdir / f"graph_service{'-batching' if batching else ''}.log"
    server = GraphServer(flags, log, model.name, (int(model.version_dir.name),))
    try:
        _check_answers(server, model, expected)
        ports = (server.grpc_port, server.rest_port)
        _protocol_cells("graph_service", batching, ports, model, levels, args, loadgen, cells)
    finally:
        server.close()


def _in_process(model: ModelUnderTest, params, levels, args, cells: list[Cell], measure: bool):
    from graph_service.runtime.servable import Servable
    from graph_service.runtime.session_options import SessionOptions

    servable = Servable.load(model.name, 1, model.version_dir, SessionOptions())
    outputs = (model.output_name,)

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return servable.run(SIGNATURE, inputs, outputs)

    sample = model.sample()
    try:
        expected = predict(sample)[model.output_name]
        for batching in (False, True) if measure else ():
            for level in levels:
                _say(f"in-process batching={batching} c={level}")
                if batching:
                    result = measure_batched(
                        predict, sample, params, level, args.warmup, args.duration
                    )
                else:
                    result = measure_threads(predict, sample, level, args.warmup, args.duration)
                cells.append(Cell("in-process (session)", "-", batching, level, result))
    finally:
        servable.close()
    return expected


def _protocol_cells(
    path, batching, ports, model, levels, args, loadgen, cells, protocols=("grpc", "rest")
):
    grpc_port, rest_port = ports
    rest_path = f"/v1/models/{model.name}:predict"
    payloads = {"grpc": grpc_request(model), "rest": rest_body(model)}
    for protocol in protocols:
        for level in levels:
            _say(f"{path} {protocol} batching={batching} c={level}")
            spec = LoadSpec(
                protocol=protocol,
                host="127.0.0.1",
                port=grpc_port if protocol == "grpc" else rest_port,
                payload=payloads[protocol],
                concurrency=level,
                warmup=args.warmup,
                duration=args.duration,
                rest_path=rest_path,
            )
            cells.append(Cell(path, protocol, batching, level, loadgen.run(spec)))


def _check_answers(server: GraphServer, model: ModelUnderTest, expected: np.ndarray) -> None:
    """Before measuring, one real answer per protocol must equal the in-process one."""
    import httpx
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    reply = stub.Predict(predict_pb2.PredictRequest.FromString(grpc_request(model)), timeout=30)
    got = tf.make_ndarray(reply.outputs[model.output_name])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    answer = httpx.post(
        f"http://127.0.0.1:{server.rest_port}/v1/models/{model.name}:predict",
        content=rest_body(model),
        timeout=30,
    )
    answer.raise_for_status()
    np.testing.assert_allclose(np.asarray(answer.json()["predictions"]), expected, rtol=1e-5)


def _report(
    args,
    cells: list[Cell],
    loads: list[VersionLoadResult],
    load_before,
    elapsed: float,
    steal: float | None = None,
    controls: list[VersionLoadResult] = (),
    paired: PairedResult | None = None,
) -> dict:
    described = machine.describe()
    command = "python -m bench graph " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else ""
    stolen = f"; CPU steal by the hypervisor {steal:.1%}" if steal is not None else ""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`{command.strip() or 'python -m bench graph'}`.",
        "",
        f"Machine: {described['nproc']} CPUs ({described['cpu']}), {described['ram_gib']} GiB RAM, "
        f"Python {described['python']}, Linux {described['kernel']}; load average before "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}{stolen}; run took {elapsed:.0f} s.",
        "",
        "| path | protocol | batching | concurrency | predictions/s | p50 ms | p95 ms | p99 ms "
        "| errors | client CPU |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        cpu = 100 * c.result.client_cpu_seconds / c.result.duration
        lines.append(
            f"| {c.path} | {c.protocol} | {'yes' if c.batching else 'no'} | {c.concurrency} "
            f"| {c.rate:,.0f} | {c.percentile_ms(50):.2f} | {c.percentile_ms(95):.2f} "
            f"| {c.percentile_ms(99):.2f} | {c.result.errors} | {cpu:.0f}% |"
        )
    top = max(int(c) for c in args.concurrency.split(","))
    batched = _find(cells, "graph_service", "grpc", True, top)
    ceiling = _find(cells, "no-op server", "grpc", False, top)
    ratio = batched.rate / ceiling.rate if batched and ceiling else float("nan")
    load_ratio = max((load.ratio for load in loads), default=float("nan"))
    if loads:
        lines += [
            "",
            "| version load | loads: ms each (median, range) | steady p50 | steady p99 "
            "| in-flight-during-load p50 | p99 | max | p99 ratio | errors |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    labelled = [(load, "pinned to version 1") for load in loads] + [
        (control, "control, no load: a core busy at idle priority") for control in controls
    ]
    for load, what in labelled:
        spans = _spans(load.load_seconds)
        lines.append(
            f"| {_PROTOCOL_NAMES[load.protocol]}, concurrency {load.concurrency}, {what} "
            f"(n={load.steady.size}"
            f" / {load.during.size}) | {spans} | {load.p('steady', 50):.2f} "
            f"| {load.p('steady', 99):.2f} | {load.p('during', 50):.2f} "
            f"| {load.p('during', 99):.2f} | {load.p('during', 100):.2f} | {load.ratio:.2f}x "
            f"| {load.errors} |"
        )
    if loads:
        lines.append(
            f'\nLoad windows from the {loads[0].window_source} ("Loading servable" to '
            '"Successfully loaded", warmup included); a request counts as during a load when '
            "it was in flight at any moment of one."
        )
    if controls:
        lines.append(
            "\nThe control row loads nothing: another process, sharing nothing with the "
            "server, burns one core at idle priority (SCHED_IDLE) for as long as a load "
            "takes, as often. Its ratio is what a busy core alone does to this p99 on "
            "this machine."
        )
    goal = paired.ratio if paired is not None else ratio
    how = (
        f"paired, {paired.describe()}; the table's cells, minutes apart: {ratio:.0%}"
        if paired is not None
        else f"the table's cells, minutes apart: {ratio:.0%}"
    )
    lines += [
        "",
        f"- Goal 1 (batching, gRPC, concurrency {top} >= 60% of the no-op ceiling): "
        f"{goal:.0%} -> {_verdict(goal, goal >= 0.6)} ({how})",
        f"- Goal 2 (p99 during a version load <= 1.5x steady, worst protocol and level): "
        f"{load_ratio:.2f}x -> {_verdict(load_ratio, load_ratio <= 1.5)}",
    ]
    errors = [(c, c.result.error_samples) for c in cells if c.result.errors]
    for c, samples in errors:
        lines.append(f"- errors in {c.path} {c.protocol} c={c.concurrency}: {samples}")
    data = {
        "machine": described,
        "cells": [
            {
                "path": c.path,
                "protocol": c.protocol,
                "batching": c.batching,
                "concurrency": c.concurrency,
                "rate": c.rate,
                "p50_ms": c.percentile_ms(50),
                "p95_ms": c.percentile_ms(95),
                "p99_ms": c.percentile_ms(99),
                "errors": c.result.errors,
                "error_samples": c.result.error_samples,
            }
            for c in cells
        ],
        "version_load": [
            {
                "protocol": load.protocol,
                "concurrency": load.concurrency,
                "load_seconds": load.load_seconds,
                "window_source": load.window_source,
                "steady_p50_ms": load.p("steady", 50),
                "steady_p99_ms": load.p("steady", 99),
                "during_p50_ms": load.p("during", 50),
                "during_p99_ms": load.p("during", 99),
                "during_max_ms": load.p("during", 100),
                "steady_n": int(load.steady.size),
                "during_n": int(load.during.size),
                "errors": load.errors,
                "error_samples": load.error_samples,
            }
            for load in loads
        ],
        "busy_core_control": [
            {
                "concurrency": c.concurrency,
                "windows_seconds": c.load_seconds,
                "steady_p99_ms": c.p("steady", 99),
                "during_p99_ms": c.p("during", 99),
                "ratio": c.ratio,
            }
            for c in controls
        ],
        "goal_ratio": goal,
        "table_goal_ratio": ratio,
        "paired_rounds": [
            {"ceiling": r.ceiling, "server": r.server, "ratio": r.ratio}
            for r in (paired.rounds if paired is not None else [])
        ],
        "load_ratio": load_ratio,
    }
    return {"markdown": "\n".join(lines), "data": data}


_PROTOCOL_NAMES = {"grpc": "gRPC", "rest": "REST"}


def _verdict(value: float, met: bool) -> str:
    if value != value:  # NaN: the part was not run
        return "not measured"
    return "MET" if met else "MISSED"


def _spans(seconds: list[float]) -> str:
    """How many loads and how long they took, short enough for one table cell."""
    if not seconds:
        return "0"
    ms = np.asarray(seconds) * 1000
    return f"{ms.size}: {np.median(ms):.0f} ({ms.min():.0f}-{ms.max():.0f})"


def _find(cells, path, protocol, batching, level) -> Cell | None:
    for c in cells:
        if (c.path, c.protocol, c.batching, c.concurrency) == (path, protocol, batching, level):
            return c
    return None


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} bench graph: {message}", flush=True)
