"""Does loading a new version disturb the version that is serving?

TF Serving users report p99 spikes of 5-10x on the serving models while another
version loads. Here clients call version 1 (pinned) of a model whose config keeps
every version (``all {}``), and new versions 2..N+1 are published one after the
other while they run -- several loads, because one small model loads in tens of
milliseconds and a single window would hold too few requests for a p99.

A load window runs from the server's "Loading servable" log line to its
"Successfully loaded servable version" line (warmup included) -- TF Serving's own
messages, so the window is the server's, not a guess from polling. A request is
"during load" when it was in flight at any moment of a window; "steady" requests
are all the others that overlap no publish-to-loaded span (the copy into the
repository included): the quiet stretch before the first publish and the ones
between loads. Taking both from the same minute matters on a shared machine,
where the speed of the host drifts (CPU steal of 10-20% was seen on the bench
machine): a steady state measured only before the loads compares two different
machines.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.busy_core import burn_core
from bench.graph_model import ModelUnderTest, copy_version, grpc_request, rest_body
from bench.graph_server import GraphServer
from bench.load_client import LoadGenerator, LoadResult, LoadSpec

_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \w+ - "
    r"(Loading servable: |Successfully loaded servable version )"
    r"\{name: (\S+) version: (\d+)\}"
)


@dataclass(frozen=True)
class VersionLoadResult:
    protocol: str  # "grpc" or "rest"
    concurrency: int
    loads: int
    load_seconds: list[float]
    window_source: str
    steady: np.ndarray  # latencies in ms
    during: np.ndarray
    errors: int
    error_samples: list[str]

    def p(self, which: str, q: float) -> float:
        values = getattr(self, which)
        return float(np.percentile(values, q)) if values.size else float("nan")

    @property
    def ratio(self) -> float:
        return self.p("during", 99) / self.p("steady", 99)


def measure_version_load(
    model: ModelUnderTest,
    workdir: Path,
    loadgen: LoadGenerator,
    *,
    concurrency: int,
    warmup: float,
    steady: float,
    loads: int,
    interval: float,
    protocol: str = "grpc",
) -> VersionLoadResult:
    workdir = workdir / f"version-load-{protocol}-c{concurrency}"
    base = workdir / model.name
    copy_version(model.version_dir, base, 1)
    config = workdir / "load.config"
    config.write_text(
        "model_config_list {\n  config {\n"
        f'    name: "{model.name}"\n    base_path: "{base}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { all {} }\n  }\n}\n"
    )
    log = workdir / "graph_service-load.log"
    server = GraphServer([f"--model_config_file={config}"], log, model.name, (1,))
    try:
        spec = _pinned_load(
            server, model, concurrency, warmup, steady + loads * interval + 1.0, protocol
        )
        outcome: list[LoadResult] = []
        client = threading.Thread(target=lambda: outcome.append(loadgen.run(spec)))
        client.start()
        time.sleep(warmup + steady)
        polled: list[tuple[float, float]] = []
        for version in range(2, loads + 2):
            began = time.monotonic()
            copied = time.time()
            copy_version(model.version_dir, base, version)
            available = _wait_logged(log, model.name, version, timeout=60.0)
            polled.append((copied, available or time.time()))
            time.sleep(max(0.0, interval - (time.monotonic() - began)))
        client.join()
        windows = _log_windows(log, model.name)
    finally:
        server.close()
    source = "server log"
    if len(windows) < loads:
        windows, source = polled, "publish-to-AVAILABLE polling (log lines not found)"
    result = outcome[0]
    starts, lat = result.starts, result.latencies
    ends = starts + lat
    in_load = _in_flight(starts, ends, windows)
    busy = np.zeros(starts.shape, dtype=bool)
    for (published, available), (_, end) in zip(polled, _align(polled, windows), strict=True):
        busy |= (starts <= max(available, end) + QUIET_MARGIN_S) & (ends >= published)
    return VersionLoadResult(
        protocol=protocol,
        concurrency=concurrency,
        loads=len(windows),
        load_seconds=[end - begin for begin, end in windows],
        window_source=source,
        steady=lat[~busy & ~in_load] * 1000,
        during=lat[in_load] * 1000,
        errors=result.errors,
        error_samples=result.error_samples,
    )


QUIET_MARGIN_S = 0.02


def _pinned_load(
    server: GraphServer,
    model: ModelUnderTest,
    concurrency: int,
    warmup: float,
    duration: float,
    protocol: str = "grpc",
) -> LoadSpec:
    """Predict calls pinned to version 1 of the server's model, over gRPC or REST."""
    if protocol == "rest":
        port, payload = server.rest_port, rest_body(model)
        path = f"/v1/models/{model.name}/versions/1:predict"
    else:
        port, payload, path = server.grpc_port, grpc_request(model, version=1), ""
    return LoadSpec(
        protocol=protocol,
        host="127.0.0.1",
        port=port,
        payload=payload,
        concurrency=concurrency,
        warmup=warmup,
        duration=duration,
        rest_path=path,
    )


def _in_flight(
    starts: np.ndarray, ends: np.ndarray, spans: list[tuple[float, float]], margin: float = 0.0
) -> np.ndarray:
    """Which calls were in flight at any moment of any span (widened by ``margin``)."""
    hit = np.zeros(starts.shape, dtype=bool)
    for begin, end in spans:
        hit |= (starts <= end + margin) & (ends >= begin - margin)
    return hit


def _align(
    polled: list[tuple[float, float]], windows: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The log window of each publish (the one that starts after it), or the polled span."""
    aligned = []
    for published, available in polled:
        after = [w for w in windows if w[0] >= published - 0.01]
        aligned.append(min(after) if after else (published, available))
    return aligned


def _wait_logged(log: Path, model: str, version: int, timeout: float) -> float | None:
    """When the server's log says ``version`` loaded (None if it failed or never did).

    Read from the log, not asked with GetModelStatus: status calls are answered by
    the same server threads as the requests under measurement, and polling them
    only while a version loads would slow the "during" requests and never the
    steady ones. The log line is written as the version becomes AVAILABLE.
    """
    done = f"Successfully loaded servable version {{name: {model} version: {version}}}"
    # The final failure (a retry is logged as a WARNING with "retrying in").
    failed = f"ERROR - Loading servable: {{name: {model} version: {version}}} failed"
    deadline = time.monotonic() + timeout
    offset = 0
    while time.monotonic() < deadline:
        with open(log, "rb") as stream:
            stream.seek(offset)
            chunk = stream.read()
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        offset += complete
        lines = chunk[:complete].decode(errors="replace")
        if done in lines:
            return time.time()
        if failed in lines:
            return None
        time.sleep(0.005)
    return None


def _log_windows(log: Path, model: str) -> list[tuple[float, float]]:
    """(start, end) wall times of each load of versions >= 2, from the server's log."""
    started: dict[int, float] = {}
    windows: list[tuple[float, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if not match or match.group(3) != model or int(match.group(4)) < 2:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        version = int(match.group(4))
        if match.group(2).startswith("Loading"):
            started[version] = when
        elif version in started:
            windows.append((started.pop(version), when))
    return windows


def measure_busy_core(
    model: ModelUnderTest,
    workdir: Path,
    loadgen: LoadGenerator,
    *,
    concurrency: int,
    warmup: float,
    steady: float,
    windows: int,
    interval: float,
    busy: float,
) -> VersionLoadResult:
    """The control for ``measure_version_load``: no load at all, a core kept busy instead.

    Another process, sharing nothing with the server, burns one core at the lowest
    priority (SCHED_IDLE) for ``busy`` seconds per window, as long as a load takes.
    Whatever this does to the p99 of the serving version is the machine's floor for
    the version-load ratio: the scheduler's answer to a busy core, not the loader's.
    """
    workdir = workdir / f"busy-core-c{concurrency}"
    base = workdir / model.name
    copy_version(model.version_dir, base, 1)
    log = workdir / "graph_service-busy.log"
    server = GraphServer(
        [f"--model_name={model.name}", f"--model_base_path={base}"], log, model.name, (1,)
    )
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    burner = ctx.Process(
        target=burn_core, args=(windows, busy, interval, warmup + steady, send), daemon=True
    )
    try:
        spec = _pinned_load(server, model, concurrency, warmup, steady + windows * interval + 1.0)
        burner.start()
        if not receive.poll(120) or receive.recv() != "ready":  # its imports are done
            raise RuntimeError("the busy-core process did not start")
        result = loadgen.run(spec)
        spans = receive.recv() if receive.poll(60) else []
    finally:
        burner.join(10)
        if burner.is_alive():
            burner.kill()
        server.close()
    starts, lat = result.starts, result.latencies
    ends = starts + lat
    during = _in_flight(starts, ends, spans)
    near = _in_flight(starts, ends, spans, margin=QUIET_MARGIN_S)
    return VersionLoadResult(
        protocol="grpc",
        concurrency=concurrency,
        loads=len(spans),
        load_seconds=[end - begin for begin, end in spans],
        window_source="idle-class busy core in another process (control, no load)",
        steady=lat[~near] * 1000,
        during=lat[during] * 1000,
        errors=result.errors,
        error_samples=result.error_samples,
    )
