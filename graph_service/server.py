"""Wiring: flags -> configs -> ServerCore -> gRPC and REST on one asyncio loop.

Startup follows tensorflow_model_server: read and check every config file
first (a bad one is fatal, with the reason on stderr; TensorFlow is not even
imported yet, so a typo fails in a fraction of a second), load the configured
models, then open the gRPC port (plus the optional Unix socket) and the REST
port. Both front ends share one event loop and one ServerCore; graph calls run
on worker threads (TensorFlow releases the GIL), so the loop only parses,
validates and encodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from graph_service.flags import FlagError, ServerOptions, parse_grpc_channel_arguments
from graph_service.monitoring import (
    Metrics,
    MonitoringConfigError,
    PrometheusSettings,
    load_monitoring_config,
)
from graph_service.serving.server_config import (
    ConfigFileError,
    ModelServerConfig,
    read_model_server_config,
    single_model_config,
    validate_config,
)

log = logging.getLogger("graph_service")

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
ISO_LOCAL_TIME = "%Y-%m-%dT%H:%M:%S%z"

# The GIL hand-over interval, set explicitly because it was measured (python -m
# bench graph, 2-CPU machine). When loads still ran Python's graph import, 1 ms
# made p99 during a load worse than 5 ms at concurrency 8 (more hand-offs). With
# loads in C++ on an idle-class thread it no longer changes p99 during loads
# (1.20x against 1.21x at concurrency 8, 2.2x either way at 1), while a batch
# thread back from TensorFlow waits up to this long for the GIL the event loop
# holds: 1 ms gave batched gRPC at concurrency 32 2,611 / 2,787 / 2,912
# predictions/s against 2,357 / 2,346 / 2,607 with 5 ms, three runs each.
GIL_SWITCH_INTERVAL_S = 0.001


class StartupError(Exception):
    """The server cannot start; the message is printed to stderr."""


@dataclass(frozen=True)
class StartupConfig:
    """Everything read from files before anything starts."""

    options: ServerOptions
    model_server_config: ModelServerConfig
    prometheus: PrometheusSettings | None
    batching: object | None  # batching_config.BatchingParameters


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    # ISO 8601 with the zone (the UTC offset), as the logic tier's lines (issue 28)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt=ISO_LOCAL_TIME))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # TensorFlow's Python deprecation notices about the TF1 loader are not news here.
    for noisy in ("tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def read_startup_config(options: ServerOptions) -> StartupConfig:
    """Read and check the config files; raises StartupError with the reason."""
    if options.model_config_file:
        try:
            config = read_model_server_config(options.model_config_file)
        except ConfigFileError as exc:
            raise StartupError(str(exc)) from None
    elif options.model_base_path:
        config = single_model_config(options.model_name, options.model_base_path)
    else:
        raise StartupError(
            "Both server_options.model_base_path and server_options.model_config_file are empty!"
        )
    try:
        config = validate_config(config, None)
    except Exception as exc:  # ServingError from validation
        raise StartupError(f"Invalid model config: {getattr(exc, 'message', exc)}") from None
    prometheus = None
    if options.monitoring_config_file:
        try:
            prometheus = load_monitoring_config(options.monitoring_config_file)
        except MonitoringConfigError as exc:
            raise StartupError(str(exc)) from None
    batching = None
    if options.enable_batching:
        from graph_service.batching.batching_config import (
            load_batching_parameters,
            server_default_batching_parameters,
        )

        try:
            batching = (
                load_batching_parameters(options.batching_parameters_file)
                if options.batching_parameters_file
                else server_default_batching_parameters()
            )
        except ValueError as exc:
            raise StartupError(str(exc)) from None
    try:
        parse_grpc_channel_arguments(options.grpc_channel_arguments)
    except FlagError as exc:
        raise StartupError(str(exc)) from None
    return StartupConfig(options, config, prometheus, batching)


def _core_options(options: ServerOptions):
    from graph_service.handlers.server_core import CoreOptions
    from graph_service.runtime.session_options import SessionOptions

    intra = options.tensorflow_intra_op_parallelism or options.tensorflow_session_parallelism
    inter = options.tensorflow_inter_op_parallelism or options.tensorflow_session_parallelism
    return CoreOptions(
        file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=(
            options.allow_version_labels_for_unavailable_models
        ),
        enable_model_warmup=options.enable_model_warmup,
        num_request_iterations_for_warmup=options.num_request_iterations_for_warmup,
        max_num_load_retries=options.max_num_load_retries,
        load_retry_interval_s=options.load_retry_interval_micros / 1e6,
        session=SessionOptions(
            intra_op_parallelism=intra,
            inter_op_parallelism=inter,
            tags=tuple(t for t in options.saved_model_tags.split(",") if t) or ("serve",),
        ),
        enable_signature_method_name_check=options.enable_signature_method_name_check,
        enforce_session_run_timeout=options.enforce_session_run_timeout,
        request_threads=max(4, 2 * (os.cpu_count() or 1)),
        split_cores_for_loads=options.split_cores_for_loads,
        batch_class_helper_threads=options.batch_class_helper_threads,
        prefer_tflite_model=options.prefer_tflite_model or options.use_tflite_model,
        tflite_pool_size=_tflite_pool_size(options),
    )


def _tflite_pool_size(options: ServerOptions) -> int:
    """Interpreters per TF Lite version: TF Serving's pools x interpreters, at least one
    per CPU this process may use, so concurrent requests never queue behind one
    interpreter while a core idles (they are created only when requests overlap)."""
    configured = options.num_tflite_pools * options.num_tflite_interpreters_per_pool
    return max(configured, len(os.sched_getaffinity(0)))


def _make_batcher(startup: StartupConfig, metrics: Metrics):
    if startup.batching is None:
        return None
    from graph_service.batching.batcher import BatchScheduler

    def on_batch(record) -> None:
        model, _version, signature = record.key[0], record.key[1], record.key[2]
        metrics.observe_batch(model, signature, record.size)

    scheduler = BatchScheduler(startup.batching, on_batch=on_batch)
    metrics.watch_queue_depths(
        lambda: [(key[0], key[1], key[2], depth) for key, depth in scheduler.queue_depths()]
    )
    return scheduler


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only
    # when the listening socket says TCP (proto 0 does not), and without NODELAY
    # uvicorn's two writes per response (head, then body) wait out the client's
    # delayed ACK: a 40 ms floor under every REST answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"Failed to bind REST API to {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _add_grpc_listeners(grpc_server, options: ServerOptions) -> int:
    """The TCP port (and optional Unix socket); returns the bound TCP port."""
    address = f"{options.host}:{options.port}"
    try:
        bound = grpc_server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise StartupError(f"Failed to bind gRPC server to {address}")
    if options.grpc_socket_path:
        socket_path = options.grpc_socket_path.removeprefix("unix:")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        try:
            grpc_server.add_insecure_port(f"unix:{socket_path}")
        except RuntimeError:
            raise StartupError(f"Failed to listen on UNIX socket {socket_path}") from None
    return bound


async def serve(startup: StartupConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    from graph_service.api.grpc_api import create_grpc_server
    from graph_service.handlers.server_core import ServerCore

    options = startup.options
    loop = asyncio.get_running_loop()
    metrics = Metrics()
    batcher = _make_batcher(startup, metrics)
    core = ServerCore(_core_options(options), metrics=metrics, batcher=batcher)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    await loop.run_in_executor(None, core.start, startup.model_server_config)
    if options.model_config_file:
        core.configs.remember_file(options.model_config_file)
    from graph_service.cpu.heap_freeze import freeze_after_startup

    freeze_after_startup()  # before serving: a full collection would stall requests

    try:
        # Bind REST before gRPC starts: a client that waits for gRPC finds REST
        # accepting too (connections queue in the backlog until uvicorn serves).
        rest_socket = (
            _bind_tcp(options.host, options.rest_api_port) if options.rest_api_port else None
        )
        grpc_server = create_grpc_server(
            core,
            parse_grpc_channel_arguments(options.grpc_channel_arguments),
            enable_profiler=options.enable_profiler,
        )
        bound = _add_grpc_listeners(grpc_server, options)
    except StartupError:
        await loop.run_in_executor(None, core.close)
        raise
    await grpc_server.start()
    log.info("Running gRPC ModelServer at %s:%d ...", options.host, bound)
    if options.grpc_socket_path:
        log.info("Running gRPC ModelServer at UNIX socket %s ...", options.grpc_socket_path)

    rest_server = None
    rest_task: asyncio.Task | None = None
    if rest_socket is not None:
        rest_server, rest_task = await _start_rest(startup, core, metrics, rest_socket)

    if options.batch_class_helper_threads:
        from graph_service.cpu.helper_threads import yield_to_loop

        # After both front ends started: grpcio's threads exist now.
        moved = yield_to_loop(threading.get_native_id())
        log.info("%d helper threads run as SCHED_BATCH: the event loop keeps its core", moved)

    config_task = None
    if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:
        config_task = asyncio.create_task(
            _poll_config_file(
                core, options.model_config_file, options.model_config_file_poll_wait_seconds
            )
        )

    await stop.wait()
    log.info("Shutting down")
    if config_task is not None:
        config_task.cancel()
    if rest_server is not None and rest_task is not None:
        rest_server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(rest_task, timeout=10)
    await grpc_server.stop(grace=5)
    await loop.run_in_executor(None, core.close)
    if batcher is not None:
        batcher.close(timeout=5)
    return 0


async def _start_rest(startup: StartupConfig, core, metrics: Metrics, sock: socket.socket):
    options = startup.options
    try:
        from graph_service.api.rest_api import create_rest_app
    except ImportError as exc:  # the REST front end is optional in a partial checkout
        log.error("REST API not available (%s); serving gRPC only", exc)
        sock.close()
        return None, None
    import uvicorn

    prometheus = startup.prometheus
    enabled = prometheus is not None and prometheus.enabled
    app = create_rest_app(
        core,
        monitoring_path=prometheus.path if enabled else None,
        render_metrics=metrics.render if enabled else None,
        request_timeout_ms=options.rest_api_timeout_in_ms,
    )
    config = uvicorn.Config(
        app,
        loop="none",
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("Exporting HTTP/REST API at:%s:%d ...", options.host, options.rest_api_port)
    if enabled:
        log.info(
            "Prometheus metrics at http://%s:%d%s",
            options.host,
            options.rest_api_port,
            prometheus.path,
        )
    return server, task


async def _poll_config_file(core, path: str, interval: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            await loop.run_in_executor(None, core.configs.reload_from_file, path)
        except Exception:
            log.exception("model config file poll failed")


def run(options: ServerOptions) -> int:
    """Read configs, then serve; every startup problem is one line on stderr and exit 1."""
    configure_logging()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        startup = read_startup_config(options)
    except StartupError as exc:
        log.error("%s", exc)
        print(f"Failed to start server. Error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(serve(startup))
    except StartupError as exc:
        print(f"Failed to start server. Error: {exc}", file=sys.stderr)
        return 1
