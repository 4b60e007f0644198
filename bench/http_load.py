"""Drive one HTTP endpoint for a bounded time: wrk when installed, else bench's own client.

Both generators answer with the same ``LoadFigures`` so the report does not
care which ran (it says which). wrk is preferred: it costs a fraction of the
CPU per request. The fallback is ``bench.load_client`` -- raw HTTP/1.1 on
keep-alive connections, one per concurrent caller, in its own spawned process
-- which needs nothing outside the virtualenv.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import wrk
from bench.load_client import LoadGenerator, LoadSpec


@dataclass(frozen=True)
class LoadFigures:
    """One measured window against one endpoint."""

    ok: int  # 2xx answers
    errors: int  # non-2xx answers and socket errors
    duration_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    client_cpu_s: float
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


class WrkLoad:
    """wrk in a subprocess per window; its CPU from the reaped child's rusage."""

    name = "wrk"

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self._scripts: dict[bytes, Path] = {}

    def describe(self) -> str:
        try:
            first = subprocess.run(
                [self.binary, "--version"], capture_output=True, text=True, timeout=10
            )
            version = (first.stdout or first.stderr).splitlines()[0].split(" Copyright")[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            version = "wrk"
        return f"{version} ({self.binary}), at most {wrk.MAX_THREADS} threads"

    def _script(self, body: bytes) -> Path:
        if body not in self._scripts:
            path = self.workdir / f"wrk-{len(self._scripts)}.lua"
            self._scripts[body] = wrk.write_script(path, body)
        return self._scripts[body]

    def run(self, port: int, path: str, body: bytes, concurrency: int, duration: float):
        url = f"http://127.0.0.1:{port}{path}"
        argv = wrk.command(self.binary, url, self._script(body), concurrency, duration)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr[-1000:]}")
        figures = wrk.parse_output(done.stdout)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        samples = []
        if figures.non2xx:
            samples.append(f"{figures.non2xx} non-2xx answers")
        if figures.socket_errors:
            samples.append(f"{figures.socket_errors} socket errors (connect/read/write/timeout)")
        return LoadFigures(
            ok=figures.ok,
            errors=figures.errors,
            duration_s=figures.duration_s,
            p50_ms=figures.p50_ms,
            p95_ms=figures.p95_ms,
            p99_ms=figures.p99_ms,
            client_cpu_s=cpu,
            error_samples=samples,
        )

    def close(self) -> None:
        pass


class PythonLoad:
    """bench.load_client's REST mode: a spawned uvloop process, reused for every window."""

    name = "python"

    def __init__(self) -> None:
        self._generator = LoadGenerator()

    def describe(self) -> str:
        return (
            "bench.load_client (Python, uvloop, raw HTTP/1.1 keep-alive, one process; "
            "wrk was not installed)"
        )

    def run(self, port: int, path: str, body: bytes, concurrency: int, duration: float):
        spec = LoadSpec(
            protocol="rest",
            host="127.0.0.1",
            port=port,
            payload=body,
            concurrency=concurrency,
            warmup=0.0,
            duration=duration,
            rest_path=path,
        )
        result = self._generator.run(spec)
        lat = result.latencies * 1000

        def pct(q: float) -> float:
            return float(np.percentile(lat, q)) if lat.size else float("nan")

        return LoadFigures(
            ok=result.completed,
            errors=result.errors,
            duration_s=result.duration,
            p50_ms=pct(50),
            p95_ms=pct(95),
            p99_ms=pct(99),
            client_cpu_s=result.client_cpu_seconds,
            error_samples=list(result.error_samples),
        )

    def close(self) -> None:
        self._generator.close()


def choose(prefer: str, workdir: Path | None = None) -> WrkLoad | PythonLoad:
    """``prefer``: "auto" (wrk when installed), "wrk" (fail without it) or "python"."""
    binary = wrk.find_wrk()
    if prefer == "python" or (prefer == "auto" and binary is None):
        return PythonLoad()
    if binary is None:
        raise SystemExit("bench stack: --load wrk, but wrk is not installed (apt-get install wrk)")
    return WrkLoad(binary, workdir or Path(tempfile.mkdtemp(prefix="bench-wrk-")))
