"""Cold start, hot reload and memory per model version: the figures besides throughput.

- **Cold start**: from spawning a system's first process to its first 200 to
  the demo request at its front door (graph tier included where it has one) --
  what a restart or a scale-out costs before the new replica serves.
- **Hot reload**: on a running tierkit stack, a new version directory is
  published atomically into the repository its graph tier polls (every second);
  one client on one keep-alive connection keeps calling, and the reload time is
  publish -> the first answer naming the new version. The same client's
  latencies give p99 during the switch against the quiet seconds before it, and
  any non-200 during the switch is counted.
- **Memory per version**: one graph tier serving version 1 only, then (after a
  ``models.config`` edit it re-reads) versions 1 and 2: RSS with each.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.stack_processes import Child, StartFailed, failure_report, stop_all, wait_for
from bench.stack_repository import DemoModel, publish_copy, write_models_config
from bench.stack_systems import SystemSpec, free_port, graph_child, pick


def post_json(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, parsed JSON or text); status 0 when nothing answered."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def start_and_wait(spec: SystemSpec, body: bytes, timeout: float) -> tuple[float, Any]:
    """Start the system's processes; (seconds to the first 200, that answer)."""
    started = time.monotonic()
    for child in spec.children:
        child.start()
    last: tuple[int, Any] = (0, "no answer yet")
    deadline = started + timeout
    while time.monotonic() < deadline:
        for child in spec.children:
            if child.exit_code() is not None:
                raise StartFailed(failure_report(spec.children, f"{spec.label}: a process died"))
        status, answer = post_json(spec.port, spec.path, body, timeout=10)
        if status == 200:
            return time.monotonic() - started, answer
        last = (status, answer)
        time.sleep(0.1)
    raise StartFailed(
        failure_report(
            spec.children,
            f"{spec.label}: no 200 from {spec.path} within {timeout:.0f} s "
            f"(last: {last[0]} {str(last[1])[:300]})",
        )
    )


@dataclass
class _Poll:
    started: float
    ended: float
    status: int
    version: Any


class _Poller:
    """One client on one keep-alive connection, calling as fast as answers come."""

    def __init__(self, spec: SystemSpec, body: bytes) -> None:
        self.spec = spec
        self.body = body
        self.polls: list[_Poll] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-reload-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.spec.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                connection.request("POST", self.spec.path, self.body, headers)
                answer = connection.getresponse()
                raw = answer.read()
                status = answer.status
                version = (
                    pick(json.loads(raw), self.spec.version_path or ()) if status == 200 else None
                )
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                status, version = 0, None
            self.polls.append(_Poll(began, time.monotonic(), status, version))

    def first_answer_from(self, version: int, after: float) -> _Poll | None:
        for poll in self.polls[-2000:]:
            if poll.started >= after and poll.status == 200 and poll.version == version:
                return poll
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


def measure_hot_reload(
    spec: SystemSpec, demo: DemoModel, body: bytes, reloads: int, say
) -> dict[str, Any]:
    """Publish ``reloads`` new versions one after another into the running stack."""
    assert spec.repository is not None and spec.version_path is not None
    poller = _Poller(spec, body)
    publishes: list[dict[str, Any]] = []
    spans: list[tuple[float, float]] = []  # publish -> first answer from it, monotonic
    try:
        time.sleep(2.0)  # the quiet stretch the switch is compared with
        quiet_until = time.monotonic()
        version = demo.version
        for _ in range(reloads):
            version += 1
            staged = time.monotonic()
            publish_copy(demo.version_dir, spec.repository, version)
            published = time.monotonic()
            seen = wait_for(lambda v=version, t=published: poller.first_answer_from(v, t), 30, 0.02)
            switched = seen.ended if seen else time.monotonic()
            spans.append((published, switched))
            window = [p for p in poller.polls if published <= p.started <= switched + 1.0]
            publishes.append(
                {
                    "version": version,
                    "copy_s": round(published - staged, 3),
                    "seconds": round(switched - published, 3) if seen else None,
                    "errors": sum(1 for p in window if p.status != 200),
                    "answered": len(window),
                }
            )
            if seen:
                say(f"hot reload: version {version} answered {switched - published:.2f} s after")
            else:
                say(f"hot reload: version {version} never answered within 30 s")
            time.sleep(1.5)  # the old version unloads; the next publish starts from quiet
        polls = list(poller.polls)
    finally:
        poller.close()
    steady = [p.ended - p.started for p in polls if p.ended <= quiet_until and p.status == 200]
    during = [
        p.ended - p.started
        for p in polls
        if p.status == 200 and any(p.ended >= a and p.started <= b + 0.5 for a, b in spans)
    ]
    seconds = [x["seconds"] for x in publishes if x["seconds"] is not None]
    return {
        "polling_s": 1.0,
        "publishes": publishes,
        "median_s": round(statistics.median(seconds), 3) if seconds else None,
        "max_s": round(max(seconds), 3) if seconds else None,
        "missed": sum(1 for x in publishes if x["seconds"] is None),
        "errors": sum(x["errors"] for x in publishes),
        "steady_p99_ms": _p99(steady),
        "during_p99_ms": _p99(during),
        "steady_n": len(steady),
        "during_n": len(during),
    }


def _p99(seconds: list[float]) -> float | None:
    return round(float(np.percentile(seconds, 99)) * 1000, 3) if seconds else None


def _states(port: int, name: str) -> dict[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{name}", timeout=5) as r:
            status = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return {int(s["version"]): s["state"] for s in status.get("model_version_status", [])}


def measure_memory_per_version(demo: DemoModel, home: Path, timeout: float, say) -> dict[str, Any]:
    """Graph tier RSS (whole process tree) serving one version, then two."""
    from bench.stack_processes import ProcessTreeSampler

    grpc_port, rest_port = free_port(), free_port()
    first, second = demo.version, demo.version + 1
    graph, base = graph_child(
        demo, home, grpc_port, rest_port, policy=f"specific {{ versions: {first} }}"
    )
    publish_copy(demo.version_dir, base, second)  # present, but not in the policy yet
    body = json.dumps({"instances": [demo.sample_row]}).encode()
    children: list[Child] = [graph]
    sampler = None
    try:
        graph.start()
        if not wait_for(lambda: _states(rest_port, demo.name).get(first) == "AVAILABLE", timeout):
            raise StartFailed(failure_report(children, "memory: version 1 never AVAILABLE"))
        sampler = ProcessTreeSampler(children)
        one = _settled_rss(sampler, rest_port, demo.name, [first], body)
        say(f"memory: graph tier RSS {one:.0f} MB with 1 version; loading a second")
        write_models_config(
            home / "models.config",
            demo.name,
            base,
            f"specific {{ versions: {first} versions: {second} }}",
        )
        both = wait_for(
            lambda: all(
                _states(rest_port, demo.name).get(v) == "AVAILABLE" for v in (first, second)
            ),
            timeout,
            0.2,
        )
        if not both:
            raise StartFailed(failure_report(children, "memory: version 2 never AVAILABLE"))
        two = _settled_rss(sampler, rest_port, demo.name, [first, second], body)
        say(f"memory: graph tier RSS {two:.0f} MB with 2 versions")
    finally:
        if sampler is not None:
            sampler.close()
        stop_all(children)
    return {
        "rss_1_version_mb": round(one, 1),
        "rss_2_versions_mb": round(two, 1),
        "per_version_mb": round(two - one, 1),
        "how": "graph tier with model_version_policy specific {v1}, then {v1, v2} "
        "(models.config re-read every 2 s); RSS after 20 predictions per loaded version",
    }


def _settled_rss(sampler, port: int, name: str, versions: list[int], body: bytes) -> float:
    """RSS after every loaded version has answered (lazy allocations included)."""
    for version in versions:
        for _ in range(20):
            post_json(port, f"/v1/models/{name}/versions/{version}:predict", body)
    time.sleep(1.0)
    return sampler.rss_mb()
