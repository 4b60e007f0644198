"""wrk as the benchmark's load generator: its Lua script, command line and report.

wrk (C, epoll, one event loop per thread) spends far less CPU per request than
any Python client, which matters on a 2-core machine where the client shares
the cores with the system it measures. The script POSTs the body and, in
``done()``, prints one line ``BENCH_WRK_JSON {...}`` with the counts and the
latency percentiles, so nothing depends on the layout of wrk's human report.
Non-2xx answers are counted in a ``response()`` hook (wrk's own ``status``
error counts only codes above 399); each thread has its own Lua state, so
``done()`` sums the threads' counters.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCH_WRK_JSON "
MAX_THREADS = 2  # the machine has 2 cores; more wrk threads only compete with the server
TIMEOUT_S = 10.0  # a request unanswered this long counts as a socket error

_SCRIPT = """\
-- written by bench/wrk.py: POST the body, count non-2xx, report JSON in done()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %(body)s

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "%(marker)s{\\"requests\\": %%.0f, \\"duration_us\\": %%.0f, \\"bytes\\": %%.0f, " ..
    "\\"non2xx\\": %%.0f, \\"connect_errors\\": %%.0f, \\"read_errors\\": %%.0f, " ..
    "\\"write_errors\\": %%.0f, \\"status_errors\\": %%.0f, \\"timeouts\\": %%.0f, " ..
    "\\"p50_us\\": %%.1f, \\"p95_us\\": %%.1f, \\"p99_us\\": %%.1f, " ..
    "\\"mean_us\\": %%.1f, \\"max_us\\": %%.1f}\\n",
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class WrkFigures:
    """One wrk run, as its ``done()`` reported it."""

    requests: int  # responses received, any status
    duration_s: float
    non2xx: int
    socket_errors: int  # connect + read + write + timeout
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return max(0, self.requests - self.non2xx)

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def find_wrk() -> str | None:
    return shutil.which("wrk")


def lua_string(text: str) -> str:
    """``text`` as a double-quoted Lua string literal (any byte survives)."""
    out = ['"']
    for byte in text.encode():
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def script_text(body: bytes) -> str:
    return _SCRIPT % {"body": lua_string(body.decode()), "marker": MARKER}


def write_script(path: Path, body: bytes) -> Path:
    path.write_text(script_text(body))
    return path


def threads_for(concurrency: int) -> int:
    """wrk needs at least one connection per thread."""
    return max(1, min(MAX_THREADS, concurrency))


def command(
    wrk: str,
    url: str,
    script: Path,
    concurrency: int,
    duration: float,
    timeout_s: float = TIMEOUT_S,
) -> list[str]:
    return [
        wrk,
        f"--threads={threads_for(concurrency)}",
        f"--connections={concurrency}",
        f"--duration={max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        f"--script={script}",
        url,
    ]


def parse_output(stdout: str) -> WrkFigures:
    """The figures from wrk's output; ValueError when the script's line is missing."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"wrk printed no {MARKER.strip()} line:\n{stdout[-2000:]}")
    sockets = sum(
        int(raw[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return WrkFigures(
        requests=int(raw["requests"]),
        duration_s=float(raw["duration_us"]) / 1e6,
        non2xx=int(raw["non2xx"]),
        socket_errors=sockets,
        p50_ms=float(raw["p50_us"]) / 1000,
        p95_ms=float(raw["p95_us"]) / 1000,
        p99_ms=float(raw["p99_us"]) / 1000,
        mean_ms=float(raw["mean_us"]) / 1000,
        max_ms=float(raw["max_us"]) / 1000,
    )
