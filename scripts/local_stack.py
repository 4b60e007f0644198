#!/usr/bin/env python
"""Run the local stack in the foreground: graph tier and logic tier under Supervisor.

Called by ``./scripts/up`` (which sets up .venv and publishes the demo model
first). Supervisor (``supervisord -n`` with a config generated per run, see
``stack_supervision``) starts ``python -m graph_service`` on 127.0.0.1 (gRPC
and REST ports, ``models.config``, polling the repository every second) and
``python -m logic_service serve`` pointed at it, restarts a tier that dies and
rotates their logs under ``logs/``. This runner waits until the logic tier's
``/readyz`` answers 200, prints the URLs and a ready-to-paste ``curl`` for every
model the logic tier serves (read from its ``/openapi.json``), then
follows Supervisor over XML-RPC: every exit and restart is told on the terminal
and in ``logs/up.log``, and a crash loop ends the run with the tier's last log
lines. Ctrl-C stops both tiers (the logic tier first) and Supervisor.

Usage: python scripts/local_stack.py [--port 8000] [--graph-port 8500]
       [--graph-rest-port 8501] [--protocol grpc|rest] [--workers N] [--config logic.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # stack_supervision/ is a folder of the repository

from graph_service.command import LOCAL_STACK_FLAGS, graph_service_command  # noqa: E402
from stack_supervision.restart_policy import (  # noqa: E402
    MAX_RESTARTS,
    RESTART_WINDOW_S,
    START_RETRIES,
    START_SECONDS,
)
from stack_supervision.supervisord_config import (  # noqa: E402
    LOG_BACKUPS,
    LOG_MAX_BYTES,
    TierProgram,
)

if TYPE_CHECKING:
    from stack_supervision.tier_watch import TierWatch
    from stack_supervision.up_log import UpLog

POLL_S = 0.5

SUPERVISION_HELP = f"""\
supervision:
  Supervisor runs both tiers. A tier that exits is restarted: at once when it
  had run over {START_SECONDS} s, else after 1, 2, 3 s; after {START_RETRIES + 1} failed starts in a
  row, or more than --max-restarts restarts within --restart-window, the run
  ends (exit code 1) naming the tier, how it exited and its last log lines.
  Exits and restarts are printed and written to LOG_DIR/up.log; Supervisor's
  own log is LOG_DIR/supervisord.log. graph.log and logic.stderr.log (the
  tiers' output) rotate at {LOG_MAX_BYTES}, {LOG_BACKUPS} kept.

exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 not ready in time or a crash
  loop, 2 bad arguments, a missing models.config or a port in use.
"""


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


MODEL_PATH = re.compile(r"^/(v[0-9]+)/models/([^/{}]+)/predict$")


def served_models(url: str) -> list[tuple[str, str, Any]] | str:
    """(model, API, example record or None) of every model the running logic tier serves.

    Asked of the tier itself (its ``/openapi.json`` lists each served model's own
    path with an example), so a model discovered in the repository shows up too;
    a problem reading it is answered as a string.
    """
    try:
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
            document = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot read {url}/openapi.json: {exc}"
    found = []
    for path, item in sorted(document.get("paths", {}).items()):
        matched = MODEL_PATH.match(path)
        if matched is None or "post" not in item:
            continue
        content = item["post"].get("requestBody", {}).get("content", {}).get("application/json", {})
        example = content.get("examples", {}).get("one record", {}).get("value")
        found.append((matched[2], matched[1], example))
    return sorted(found, key=lambda m: (m[0], int(m[1][1:])))


def model_curl(url: str, model: str, api: str, example: Any) -> str:
    body = json.dumps(example)
    return (
        f"curl -s -X POST {url}/{api}/models/{model}/predict \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )


def models_section(url: str) -> str:
    """The banner's part that shows each served model and a curl that scores its example."""
    models = served_models(url)
    if isinstance(models, str):
        return f"  models: {models}; see {url}/docs\n"
    if not models:
        return f"  no model is served yet; see {url}/readyz\n"
    names = sorted({m for m, _, _ in models})
    lines = [f"  models served: {', '.join(names)} (request schemas in {url}/docs)\n"]
    for model, api, example in models:
        if example is None:
            lines.append(f"\n  {model} (API {api}): no example record; its schema is in /docs\n")
            continue
        lines.append(f"\n  try {model} (API {api}):\n\n{model_curl(url, model, api, example)}\n")
    return "".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/up",
        description="Run graph tier + logic tier locally under Supervisor, which restarts a "
        "tier that dies; Ctrl-C stops both.",
        epilog=SUPERVISION_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--effective-models-config",
        type=Path,
        default=Path("var/graph/models.config"),
        help="the config the graph tier reads: --models-config plus the versions in use "
        "(rollouts, labels, pins), kept by the logic tier (default var/graph/models.config)",
    )
    parser.add_argument(
        "--graph-metrics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the graph tier's Prometheus metrics on its REST port at "
        "/monitoring/prometheus/metrics (deploy/tfserving/monitoring.config, as compose "
        "gives TF Serving; default on)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path("logs"), help="where both tiers log (default logs)"
    )
    parser.add_argument(
        "--wait", type=float, default=180.0, help="seconds to wait for /readyz before giving up"
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=MAX_RESTARTS,
        help=f"restarts of a tier that had been running, within --restart-window, before the "
        f"run ends as a crash loop (default {MAX_RESTARTS})",
    )
    parser.add_argument(
        "--restart-window",
        type=float,
        default=RESTART_WINDOW_S,
        help=f"seconds over which --max-restarts counts (default {RESTART_WINDOW_S:.0f})",
    )
    return parser.parse_args(argv)


MONITORING_CONFIG = ROOT / "deploy" / "tfserving" / "monitoring.config"


def graph_metrics_flags(enabled: bool) -> list[str]:
    """TF Serving's flag for its Prometheus exporter, with the file compose gives it."""
    return [f"--monitoring_config_file={MONITORING_CONFIG}"] if enabled else []


def tier_programs(args: argparse.Namespace, log_dir: Path) -> list[TierProgram]:
    """The two tiers, graph first (Supervisor starts by priority and stops in reverse)."""
    graph = TierProgram(
        "graph",
        "graph tier",
        graph_service_command(
            args.graph_port,
            args.graph_rest_port,
            f"--model_config_file={args.effective_models_config.resolve()}",
            *LOCAL_STACK_FLAGS,
            *graph_metrics_flags(args.graph_metrics),
        ),
        log_dir / "graph.log",
        priority=100,
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
        logic_argv += ["--config", str(args.config.resolve())]
    logic = TierProgram(
        "logic",
        "logic tier",
        logic_argv,
        log_dir / "logic.stderr.log",  # the service writes logic.log there itself
        priority=200,
        environment={
            "TIERKIT_GRAPH__GRPC_ADDRESS": f"127.0.0.1:{args.graph_port}",
            "TIERKIT_GRAPH__REST_URL": f"http://127.0.0.1:{args.graph_rest_port}",
            "TIERKIT_LOG__CONSOLE": "false",
            "TIERKIT_LOG__DIR": str(log_dir.resolve()),
            # the keeper: versions in use stay loaded whatever models.config's policy
            "TIERKIT_GRAPH_CONFIG__MODELS_CONFIG": str(args.models_config.resolve()),
            "TIERKIT_GRAPH_CONFIG__EFFECTIVE_FILE": str(args.effective_models_config.resolve()),
            # feature code published into your own repository runs (docs/security.md)
            "TIERKIT_FEATURES__TRUST_MODEL_REPOSITORY": "true",
        },
        own_log=log_dir / "logic.log",
    )
    return [graph, logic]


def seed_graph_config(args: argparse.Namespace) -> str | None:
    """The graph tier's first config (it starts before the logic tier); a problem, or None.

    The graph tier reads --effective-models-config, never --models-config itself:
    the logic tier keeps it equal to models.config plus the versions in use. Here
    it is written once before the graph tier starts, with whatever the logic
    tier's database already pins (a restart in the middle of a canary).
    """
    from logic_service.pinning.api_use import api_context
    from logic_service.pinning.seed import seed_effective_file
    from logic_service.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config if args.config.is_file() else None)
    except (SettingsError, ValueError) as exc:
        return f"{args.config}: {exc}"
    try:
        seed_effective_file(
            args.models_config.resolve(),
            args.effective_models_config.resolve(),
            settings.storage.database_url,
            settings.stable_label,
            api_context(settings),
            settings.model_repository,  # models published there but not in models.config
        )
    except OSError as exc:
        return f"cannot seed {args.effective_models_config}: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # --help ends here: usage only, nothing imported that needs .venv
    from stack_supervision.supervisord_process import Supervisord, SupervisordError
    from stack_supervision.tier_watch import TierWatch
    from stack_supervision.up_log import UpLog

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
    seeded = seed_graph_config(args)
    if seeded is not None:
        print(f"[up] {seeded}", file=sys.stderr)
        return 2
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    programs = tier_programs(args, log_dir)
    up_log = UpLog(log_dir / "up.log")
    supervisord = Supervisord(programs, log_dir, ROOT)
    watch = TierWatch(supervisord, programs, up_log, args.max_restarts, args.restart_window)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    url = f"http://127.0.0.1:{args.port}"
    try:
        supervisord.start(env)
        up_log.begin_line(
            f"starting graph tier (gRPC :{args.graph_port}, REST :{args.graph_rest_port}) "
            f"and logic tier (:{args.port}, {args.protocol}) under Supervisor; "
            f"waiting for {url}/readyz "
        )
        if not wait_ready(url, watch, up_log, args.wait):
            return 1
        print_banner(args, url, log_dir)
        return follow(url, watch, up_log)
    except SupervisordError as exc:
        up_log.say(str(exc), error=True)
        return 1
    except Interrupted as why:
        up_log.say(f"{why}: stopping")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisord.stop()
        up_log.say("stopped")
        up_log.close()


def wait_ready(url: str, watch: TierWatch, up_log: UpLog, limit: float) -> bool:
    deadline = time.monotonic() + limit
    last = ""
    while time.monotonic() < deadline:
        crash_loop = watch.poll()
        if crash_loop is not None:
            up_log.say(crash_loop.report(), error=True)
            return False
        status, last = readyz(url)
        if status == 200:
            up_log.end_line(" ready")
            watch.down_since = None  # start-up retries are not an outage of a served stack
            return True
        up_log.dot()
        time.sleep(1.0)
    up_log.say(f"not ready after {limit:.0f}s: {last}", error=True)
    up_log.say("see graph.log and logic.log", error=True)
    return False


def print_banner(args: argparse.Namespace, url: str, log_dir: Path) -> None:
    print(
        "\n"
        f"  logic tier   {url}   (docs {url}/docs, metrics {url}/metrics)\n"
        f"  graph tier   gRPC 127.0.0.1:{args.graph_port}   "
        f"REST http://127.0.0.1:{args.graph_rest_port}/v1/models/<model>\n"
        f"  logs         {log_dir}/logic.log, {log_dir}/graph.log, {log_dir}/up.log\n"
        "\n"
        f"{models_section(url)}\n"
        "  A tier that dies is restarted (see ./scripts/up --help).\n"
        "  Ctrl-C stops both tiers.\n",
        flush=True,
    )


def follow(url: str, watch: TierWatch, up_log: UpLog) -> int:
    """Until Ctrl-C: tell exits and restarts, and when the stack serves again; 1 on a crash loop."""
    from stack_supervision.tier_watch import duration

    unready_seen = False
    while True:
        crash_loop = watch.poll()
        if crash_loop is not None:
            up_log.say(crash_loop.report(), error=True)
            return 1
        if watch.down_since is not None:
            # /readyz is the logic tier's view, refreshed every second: a 200 counts once it
            # has said not ready since the exit, or once every tier is past its start-up.
            if readyz(url)[0] != 200:
                unready_seen = True
            elif unready_seen or watch.all_running():
                up_log.say(
                    f"serving again: {url}/readyz answers 200, "
                    f"{duration(time.monotonic() - watch.down_since)} after the "
                    f"{watch.down_tier} exited",
                    stamp=True,
                )
                watch.down_since, unready_seen = None, False
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
