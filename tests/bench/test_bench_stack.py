"""The pure parts of ``python -m bench stack`` and ``python -m bench capacity``.

No server of the benchmark is started and nothing is timed: wrk's report
parsing, the Lua script (run for one second against a tiny local server when
wrk is installed, because a Lua typo would otherwise surface only in a full
benchmark), the capacity arithmetic, and the report rendered from fixed
figures, including its place between the markers in docs/benchmarks.md.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import capacity, stack_report, wrk  # noqa: E402
from bench.stack_repository import publish_copy  # noqa: E402
from bench.stack_systems import pick  # noqa: E402

WRK_STDOUT = """\
Running 2s test @ http://127.0.0.1:8000/v1/models/ctr/predict
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    0.40ms   9.00ms   90.00%
  3000 requests in 2.00s, 1.00MB read
Requests/sec:   1500.00
BENCH_WRK_JSON {"requests": 3000, "duration_us": 2000500, "bytes": 1048576, "non2xx": 7, \
"connect_errors": 1, "read_errors": 2, "write_errors": 0, "status_errors": 7, "timeouts": 3, \
"p50_us": 2050.0, "p95_us": 3100.5, "p99_us": 4200.0, "mean_us": 2100.0, "max_us": 9000.0}
"""


def test_wrk_report_line_is_parsed() -> None:
    figures = wrk.parse_output(WRK_STDOUT)
    assert figures.requests == 3000
    assert figures.duration_s == pytest.approx(2.0005)
    assert figures.non2xx == 7
    assert figures.socket_errors == 6  # connect + read + write + timeouts
    assert figures.errors == 13
    assert figures.ok == 2993
    assert (figures.p50_ms, figures.p95_ms, figures.p99_ms) == pytest.approx((2.05, 3.1005, 4.2))


def test_wrk_output_without_the_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_WRK_JSON"):
        wrk.parse_output("Running 2s test @ http://127.0.0.1:1/\nunable to connect\n")


def test_lua_string_keeps_every_character() -> None:
    assert wrk.lua_string('{"a": "x\\\\y"}') == '"{\\"a\\": \\"x\\\\\\\\y\\"}"'
    assert wrk.lua_string("é\n") == '"\\195\\169\\010"'


def test_script_and_command() -> None:
    body = json.dumps({"userId": 1, "deviceName": 'TECNO "BB4k"'}).encode()
    text = wrk.script_text(body)
    assert 'wrk.method = "POST"' in text
    assert wrk.lua_string(body.decode()) in text
    assert wrk.MARKER.strip() in text and "function done(" in text
    assert wrk.threads_for(1) == 1 and wrk.threads_for(64) == wrk.MAX_THREADS == 2
    argv = wrk.command("wrk", "http://127.0.0.1:1/p", Path("s.lua"), 64, 10, 5)
    assert "--connections=64" in argv and "--threads=2" in argv and "--duration=10s" in argv


class _EveryThirdFails(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            type(self).count += 1
            status = 500 if type(self).count % 3 == 0 else 200
        payload = b'{"score": 0.5}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (scripts/test installs it)"
)
def test_wrk_script_runs_and_counts_non_2xx(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EveryThirdFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = wrk.write_script(tmp_path / "post.lua", b'{"userId": 1}')
        url = f"http://127.0.0.1:{server.server_address[1]}/predict"
        argv = wrk.command(shutil.which("wrk"), url, script, concurrency=2, duration=1)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    figures = wrk.parse_output(done.stdout)
    assert figures.requests > 0
    assert figures.non2xx > 0 and figures.ok > 0
    assert figures.p50_ms <= figures.p99_ms


def _cell(level: int, rate: float, p99: float, cpu: dict[str, float], errors: int = 0) -> dict:
    return {
        "concurrency": level,
        "rate": rate,
        "ok": int(rate * 10),
        "errors": errors,
        "error_samples": [],
        "duration_s": 10.0,
        "p50_ms": p99 / 3,
        "p95_ms": p99 / 1.5,
        "p99_ms": p99,
        "client_cpu_s": 3.0,
        "cpu_s": cpu,
        "peak_rss_mb": {name: 200.0 for name in cpu},
    }


def _system(name: str, label: str, cells: list[dict], cold: float = 5.0) -> dict:
    return {
        "name": name,
        "label": label,
        "description": f"{label} as measured",
        "cold_start_s": cold,
        "score": 0.308389,
        "failed": None,
        "cells": cells,
    }


FIGURES = {
    "format": "tierkit.bench-stack/1",
    "command": "./scripts/bench",
    "started": "2026-12-01 22:00 UTC",
    "elapsed_s": 300.0,
    "machine": {"nproc": 2, "cpu": "Test CPU", "ram_gib": 23.5, "python": "3.11.7", "kernel": "6"},
    "load_average_before": [0.5, 0.5, 0.5],
    "load_average_after": [1.5, 1.0, 0.7],
    "load_generator": {"name": "wrk", "description": "wrk 4.1.0, at most 2 threads"},
    "duration_s": 10.0,
    "warmup_s": 2.0,
    "concurrency": [1, 16, 64],
    "reference_score": 0.308389,
    "systems": [
        _system(
            "tierkit-grpc",
            "tierkit (gRPC)",
            [
                _cell(1, 500.0, 2.5, {"graph tier": 3.0, "logic tier": 5.0}),
                _cell(16, 1500.0, 20.0, {"graph tier": 6.0, "logic tier": 9.0}),
                _cell(64, 1600.0, 150.0, {"graph tier": 6.0, "logic tier": 10.0}),
            ],
            cold=9.0,
        ),
        _system(
            "flask-one-tier",
            "Flask recipe, one tier",
            [
                _cell(1, 50.0, 30.0, {"gunicorn worker 1": 9.0}),
                _cell(16, 100.0, 400.0, {"gunicorn worker 1": 10.0}),
                _cell(64, 100.0, 900.0, {"gunicorn worker 1": 10.0}, errors=4),
            ],
        ),
        _system(
            "kserve",
            "KServe transformer",
            [
                _cell(1, 100.0, 15.0, {"kserve": 9.0}),
                _cell(16, 300.0, 300.0, {"kserve": 10.0}),
                _cell(64, 1000.0, 600.0, {"kserve": 10.0}),
            ],
        ),
        {**_system("flask-two-tier", "Flask recipe, two tiers", []), "failed": "it died\nlog"},
    ],
    "hot_reload": {
        "system": "tierkit (gRPC)",
        "polling_s": 1.0,
        "publishes": [
            {"version": 2, "copy_s": 0.01, "seconds": 0.6, "errors": 0, "answered": 100},
            {"version": 3, "copy_s": 0.01, "seconds": 1.1, "errors": 0, "answered": 120},
        ],
        "median_s": 0.85,
        "max_s": 1.1,
        "missed": 0,
        "errors": 0,
        "steady_p99_ms": 3.0,
        "during_p99_ms": 4.0,
        "steady_n": 800,
        "during_n": 900,
    },
    "memory_per_version": {
        "rss_1_version_mb": 660.0,
        "rss_2_versions_mb": 662.0,
        "per_version_mb": 2.0,
        "how": "specific {v1}, then {v1, v2}",
    },
}


def test_report_tables_ratios_and_targets() -> None:
    text = stack_report.render(FIGURES)
    assert "`./scripts/bench`" in text and "**wrk**" in text and "Test CPU" in text
    assert "| tierkit (gRPC) | 16 | 1,500 | 6.67 | 13.33 | 20.00 | 0 " in text
    assert "graph tier 6.0 / logic tier 9.0 (sum 15.0)" in text
    assert "| Flask recipe, two tiers | - | failed: it died |" in text
    # tierkit / Flask requests/s, then Flask / tierkit p99
    assert "| Flask recipe, one tier | 10.00x | 15.00x | 16.00x | 12.00x | 20.00x | 6.00x |" in text
    assert "![requests/s and p99 per system and concurrency](img/bench-stack.png)" in text
    assert "median 0.85 s, max 1.10 s" in text and "2.0 MB per version" in text
    verdicts = {what: met for what, _, met in stack_report.targets(FIGURES)}
    assert verdicts["c=16: 10x the one-tier Flask recipe's requests/s"] is True
    assert verdicts["c=64: 2x the KServe transformer's requests/s"] is False  # 1.6x
    assert verdicts["c=1: p50 under 3 ms"] is True
    assert verdicts["hot reload under 2 s (polling 1 s)"] is True
    assert verdicts["p99 while a version loads <= 1.5x steady"] is True  # 1.33x
    assert verdicts["cold start of the local stack under 15 s"] is True


def test_report_without_tierkit_says_so() -> None:
    figures = copy.deepcopy(FIGURES)
    figures["systems"] = figures["systems"][1:]
    figures["hot_reload"] = None
    text = stack_report.render(figures, chart=None)
    assert "tierkit (gRPC) was not measured" in text and "![" not in text
    assert all(met is None for _, _, met in stack_report.targets(figures))


def test_docs_section_is_added_once_then_replaced_in_place() -> None:
    owned = "# Benchmarks\n\n## Graph tier\n\nRESULTS_PLACEHOLDER\n"
    first = stack_report.place_in_docs(owned, "table one")
    assert first.startswith(owned)
    assert stack_report.SECTION in first
    assert f"{stack_report.BEGIN}\ntable one\n{stack_report.END}" in first
    edited = first + "\n## Later section\n\nkept\n"
    second = stack_report.place_in_docs(edited, "table two")
    assert second == edited.replace("table one", "table two")
    assert second.count(stack_report.SECTION) == 1


def test_chart_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra is not installed")
    path = tmp_path / "img" / "bench-stack.png"
    stack_report.write_chart(FIGURES, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_capacity_takes_the_best_cell_within_the_budget() -> None:
    basis = capacity.best_basis(FIGURES, "tierkit-grpc", p99_target_ms=100)
    assert basis is not None
    # c=1: 500 / 0.8 cores = 625; c=16: 1500 / 1.5 = 1000; c=64 is over the budget
    assert basis.concurrency == 16
    assert basis.per_core == pytest.approx(1000.0)
    assert capacity.best_basis(FIGURES, "tierkit-grpc", p99_target_ms=1) is None
    assert capacity.best_basis(FIGURES, "tierkit-rest", p99_target_ms=100) is None


def test_capacity_skips_cells_with_errors_and_falls_back_to_cores() -> None:
    basis = capacity.best_basis(FIGURES, "flask-one-tier", p99_target_ms=1000)
    assert basis is not None and basis.concurrency == 16  # c=64 had errors
    assert capacity.busy_cores({"cpu_s": {}, "duration_s": 10}, fallback=2.0) == 2.0


def test_capacity_plan_arithmetic() -> None:
    rows = capacity.plan(per_core=500.0, headroom=0.7, cores_per_replica=2, min_replicas=2)
    # one replica: 500 * 2 * 0.7 = 700 requests/s
    assert [(r.rate, r.replicas, r.cores) for r in rows] == [
        (20, 2, 4),
        (80, 2, 4),
        (500, 2, 4),
        (5000, 8, 16),
    ]
    rows = capacity.plan(per_core=10.0, headroom=0.5, cores_per_replica=1, min_replicas=3)
    assert [r.replicas for r in rows] == [4, 16, 100, 1000]
    with pytest.raises(ValueError):
        capacity.plan(per_core=0.0, headroom=0.7, cores_per_replica=2, min_replicas=2)


def test_capacity_table_states_its_assumptions() -> None:
    basis = capacity.best_basis(FIGURES, "tierkit-grpc", p99_target_ms=100)
    rows = capacity.plan(basis.per_core, 0.7, 2, 2)
    text = capacity.render(
        basis,
        rows,
        p99_target_ms=100,
        headroom=0.7,
        cores_per_replica=2,
        min_replicas=2,
        source="test",
    )
    assert "| 5,000 | ~300M | 4 | 8 |" in text
    assert "70% of measured capacity" in text and "At least 2 replicas" in text
    assert "1,000 requests/s per core" in text


def test_capacity_command_reads_the_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "figures.json"
    source.write_text(json.dumps(FIGURES))
    from bench.__main__ import main

    assert main(["capacity", "--from", str(source)]) == 0
    assert "| 20 | ~0.3M | 2 | 4 |" in capsys.readouterr().out
    assert main(["capacity", "--from", str(tmp_path / "missing.json")]) == 2


def test_publish_copy_renames_into_place_with_its_own_version(tmp_path: Path) -> None:
    source = tmp_path / "src" / "7"
    (source / "assets.extra").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"graph")
    (source / "assets.extra" / "tierkit.json").write_text(json.dumps({"name": "ctr", "version": 7}))
    base = tmp_path / "repo" / "ctr"
    target = publish_copy(source, base, 8)
    assert target == base / "8"
    assert json.loads((target / "assets.extra" / "tierkit.json").read_text())["version"] == 8
    assert json.loads((source / "assets.extra" / "tierkit.json").read_text())["version"] == 7
    assert sorted(p.name for p in base.iterdir()) == ["8"]  # no staging left behind


def test_pick_finds_the_score_or_none() -> None:
    answer = {"predictions": [{"score": 0.25}], "prediction": {"score": 0.5}}
    assert pick(answer, ("predictions", 0, "score")) == 0.25
    assert pick(answer, ("prediction", "score")) == 0.5
    assert pick(answer, ("score",)) is None
    assert pick("text", ("score",)) is None
