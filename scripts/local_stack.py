#!/usr/bin/env python
"""Run the local stack in the foreground: graph tier, then logic tier; Ctrl-C stops both.

Called by ``./scripts/up`` (which sets up .venv and publishes the demo model
first). Starts ``python -m graph_service`` on 127.0.0.1 (gRPC and REST ports,
``models.config``, polling the repository every second) and
``python -m logic_service serve`` pointed at it, waits until the logic tier's
``/readyz`` answers 200, prints the URLs and a ready-to-paste ``curl``, and
then watches both: if either dies, the other is stopped too and the dead one's
last log lines are printed. Each process logs under ``logs/``.

Usage: python scripts/local_stack.py [--port 8000] [--graph-port 8500]
       [--graph-rest-port 8501] [--protocol grpc|rest] [--workers N] [--config logic.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from graph_service.command import LOCAL_STACK_FLAGS, graph_service_command

ROOT = Path(__file__).resolve().parent.parent
TAIL_LINES = 25


class Child:
    """One tier as a child process, its stdout and stderr in one file under logs/."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(self.argv)}\n".encode()
            )
            log.flush()
            # Own session: the terminal's Ctrl-C reaches us only, and we stop the
            # tiers in order (logic first, so it never answers for a vanished graph tier).
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self) -> str:
        """The last lines this run wrote (the file also holds earlier runs)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        lines = text[text.rfind("\n=== ") + 1 :].splitlines()[1:]
        return "\n".join(f"    {line}" for line in lines[-TAIL_LINES:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"[up] {self.name} did not stop within {timeout:.0f}s; killing it", flush=True)
            self.popen.kill()
            self.popen.wait(timeout=5)


class Interrupted(Exception):
    pass


def _on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def readyz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def demo_curl(url: str) -> str:
    sys.path.insert(0, str(ROOT))
    from logic_service.features.ctr import EXAMPLE_REQUEST

    body = json.dumps(EXAMPLE_REQUEST)
    return (
        f"curl -s -X POST {url}/v1/models/ctr/predict \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/up", description="Run graph tier + logic tier locally; Ctrl-C stops both."
    )
    parser.add_argument("--port", type=int, default=8000, help="logic tier HTTP port")
    parser.add_argument("--graph-port", type=int, default=8500, help="graph tier gRPC port")
    parser.add_argument("--graph-rest-port", type=int, default=8501, help="graph tier REST port")
    parser.add_argument(
        "--protocol",
        choices=("grpc", "rest"),
        default="grpc",
        help="between the tiers (default grpc)",
    )
    parser.add_argument("--workers", type=int, default=1, help="logic tier worker processes")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("logic.yaml"),
        help="logic tier settings (default logic.yaml)",
    )
    parser.add_argument(
        "--models-config",
        type=Path,
        default=Path("models.config"),
        help="graph tier ModelServerConfig (default models.config)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path("logs"), help="where both tiers log (default logs)"
    )
    parser.add_argument(
        "--wait", type=float, default=180.0, help="seconds to wait for /readyz before giving up"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.chdir(ROOT)
    if not args.models_config.is_file():
        print(
            f"[up] {args.models_config} not found: publish a model first "
            "(python scripts/publish_demo.py)",
            file=sys.stderr,
        )
        return 2
    busy = [p for p in (args.port, args.graph_port, args.graph_rest_port) if port_in_use(p)]
    if busy:
        print(
            f"[up] port(s) {', '.join(map(str, busy))} already in use on 127.0.0.1 "
            "(another stack running?); choose others with --port/--graph-port/--graph-rest-port",
            file=sys.stderr,
        )
        return 2
    log_dir = args.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    graph = Child(
        "graph tier",
        graph_service_command(
            args.graph_port,
            args.graph_rest_port,
            f"--model_config_file={args.models_config}",
            *LOCAL_STACK_FLAGS,
        ),
        log_dir / "graph.log",
        env,
    )
    logic_argv = [
        sys.executable,
        "-m",
        "logic_service",
        "serve",
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--protocol",
        args.protocol,
    ]
    if args.config.is_file():
        logic_argv += ["--config", str(args.config)]
    logic = Child(
        "logic tier",
        logic_argv,
        log_dir / "logic.stderr.log",  # the service writes logic.log there itself
        env
        | {
            "TIERKIT_GRAPH__GRPC_ADDRESS": f"127.0.0.1:{args.graph_port}",
            "TIERKIT_GRAPH__REST_URL": f"http://127.0.0.1:{args.graph_rest_port}",
            "TIERKIT_LOG__CONSOLE": "false",
            "TIERKIT_LOG__DIR": str(log_dir),
        },
    )
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    url = f"http://127.0.0.1:{args.port}"
    children = (logic, graph)  # stop order
    try:
        graph.start()
        logic.start()
        print(
            f"[up] starting graph tier (gRPC :{args.graph_port}, REST :{args.graph_rest_port}) "
            f"and logic tier (:{args.port}, {args.protocol}); waiting for {url}/readyz ",
            end="",
            flush=True,
        )
        if not wait_ready(url, (graph, logic), args.wait):
            return 1
        print_banner(args, url, log_dir)
        return watch(children)
    except Interrupted as why:
        print(f"\n[up] {why}: stopping", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            child.stop()
        print("[up] stopped", flush=True)


def wait_ready(url: str, children: tuple[Child, ...], limit: float) -> bool:
    deadline = time.monotonic() + limit
    last = ""
    while time.monotonic() < deadline:
        for child in children:
            code = child.exit_code()
            if code is not None:
                print(
                    f"\n[up] {child.name} exited with code {code}; last lines of "
                    f"{child.log_path}:\n{child.tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                return False
        status, last = readyz(url)
        if status == 200:
            print(" ready", flush=True)
            return True
        print(".", end="", flush=True)
        time.sleep(1.0)
    print(
        f"\n[up] not ready after {limit:.0f}s: {last}\n[up] see graph.log and logic.log",
        file=sys.stderr,
        flush=True,
    )
    return False


def print_banner(args: argparse.Namespace, url: str, log_dir: Path) -> None:
    print(
        "\n"
        f"  logic tier   {url}   (docs {url}/docs, metrics {url}/metrics)\n"
        f"  graph tier   gRPC 127.0.0.1:{args.graph_port}   "
        f"REST http://127.0.0.1:{args.graph_rest_port}/v1/models/ctr\n"
        f"  logs         {log_dir}/logic.log, {log_dir}/graph.log\n"
        "\n  try the demo request:\n\n"
        f"{demo_curl(url)}\n\n"
        "  Ctrl-C stops both tiers.\n",
        flush=True,
    )


def watch(children: tuple[Child, ...]) -> int:
    while True:
        for child in children:
            code = child.exit_code()
            if code is not None:
                print(
                    f"[up] {child.name} exited with code {code}; last lines of "
                    f"{child.log_path}:\n{child.tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
