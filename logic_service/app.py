"""The logic tier's HTTP API, built by ``create_app(settings)``.

The factory wires the parts (graph client, model registry, routing policy,
metrics) into one FastAPI app; nothing lives at module level, so tests can
build several apps in one process and the multi-worker server builds one per
worker from the environment (``app_from_environment``). The parts that need
the running loop or the database are made and started in the lifespan, which
then keeps them as one typed ``Services`` (``services.py``): what every router
reaches through ``services_of(request.app)``. Every route is declared on an
``APIRouter`` of its ``api/`` module and included here, in one list.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from logic_service.api.admin_apis import api_admin_router
from logic_service.api.admin_rollouts import admin_router
from logic_service.api.dashboard import STATIC_PATH, dashboard_router, static_files
from logic_service.api.errors import install_error_handlers
from logic_service.api.evaluation import evaluation_router
from logic_service.api.feedback import feedback_router
from logic_service.api.health import health_router
from logic_service.api.middleware import RequestMiddleware
from logic_service.api.predict import install_api_openapi, predict_router
from logic_service.api.security import CallerGuard, install_cors, metrics_guard
from logic_service.graph.factory import create_graph_client
from logic_service.observability.logs import configure_logging
from logic_service.observability.metrics import Metrics
from logic_service.pinning.keeper import start_keeper, stop_keeper
from logic_service.prediction.service import PredictService
from logic_service.routing.api_versions import ApiCatalog
from logic_service.routing.pinned import PinnedRoutes
from logic_service.routing.rollout_policy import build_rollout_policy
from logic_service.routing.shadow import ShadowRunner
from logic_service.services import Services
from logic_service.settings import LogicSettings, load_settings
from logic_service.storage.database import open_database
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.retention import Retention
from logic_service.storage.retention_process import run_in_child
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.storage.writer.spill_file import open_spill
from logic_service.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


def create_app(settings: LogicSettings | None = None, configure_logs: bool = True) -> FastAPI:
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(
            settings.log.dir,
            settings.log.file,
            settings.log.level,
            settings.log.retention_days,
            settings.log.archive_dir,
            console=settings.log.console,
            max_file_bytes=settings.log.max_file_bytes,
            archive_retention_days=settings.log.archive_retention_days,
            max_total_bytes=settings.log.max_total_bytes,
        )
    metrics = Metrics()
    apis = ApiCatalog(settings)  # OpenAPI lists its APIs; registry and database come at start

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # grpc.aio objects belong to the running loop: made here, not at import.
        client = create_graph_client(
            settings, lambda model, rows: metrics.graph_batch_rows.labels(model).observe(rows)
        )
        registry = ModelRegistry(settings, client)
        storage = settings.storage
        database = open_database(
            storage.database_url,
            storage.busy_timeout_ms,
            password_file=storage.database_password_file,
            migrate=storage.migrate_on_start,
        )
        recorder = PredictionRecorder(
            database,
            metrics,
            queue_size=storage.queue_size,
            batch_size=storage.batch_size,
            flush_interval_ms=storage.flush_interval_ms,
            write_retry_s=storage.write_retry_s,
            spill=open_spill(storage),
            probe_interval_s=storage.spill.probe_interval_s,
            payloads=PayloadPolicy(storage.payloads, storage.payload_sample_rate),
        )
        rollouts = build_rollout_policy(
            settings,
            database,
            lambda model: dict(registry.routable(model).labels),
            metrics,
        )
        pins = PinnedRoutes(settings, registry, apis)
        # labels the rollout routes to, and those pinned callers named (issue #24)
        registry.label_names = lambda model: rollouts.label_targets(model) | pins.label_names(model)
        shadow = ShadowRunner(metrics)
        predictor = PredictService(
            settings,
            registry,
            client,
            rollouts,
            metrics,
            apis=apis,
            shadow=shadow,
            prediction_log=recorder if storage.record_predictions else None,
        )
        recorder.start()
        target = (
            settings.graph.grpc_address
            if settings.graph.protocol == "grpc"
            else (settings.graph.rest_url)
        )
        log.info(
            "logic tier starting: models %s, graph tier %s over %s",
            ", ".join(registry.model_names()),  # logic.yaml's and those found (issue 29)
            target,
            settings.graph.protocol,
        )
        await registry.start(wait_s=settings.startup_wait_s)
        await rollouts.start()
        # old log rows and aggregates deleted in batches, one replica at a time
        retention = Retention(
            database,
            storage.retention,
            rollouts.store,
            runner=(
                (lambda owner, stopping: run_in_child(storage, owner, stopping))
                if storage.retention.child_process
                else None
            ),
        )
        retention.start()
        # versions in use stay loaded in the graph tier (pinning/keeper.py)
        keeper = await start_keeper(settings, database, client, registry)
        await apis.start(registry, database)
        app.state.services = Services(
            settings=settings,
            metrics=metrics,
            registry=registry,
            database=database,
            prediction_log=recorder,
            rollouts=rollouts,
            apis=apis,
            pins=pins,
            shadow=shadow,
            predictor=predictor,
            keeper=keeper,
        )
        # With FastAPI, pydantic, scikit-learn and pandas imported a full collection
        # walks ~200,000 objects (144 ms measured): frozen objects are never scanned,
        # so collections see only what requests allocate (as graph_service does,
        # see graph_service/cpu/heap_freeze.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await apis.stop()
            await stop_keeper(keeper)
            await asyncio.to_thread(retention.stop)
            await rollouts.stop()
            await registry.stop()
            await client.close()
            await asyncio.to_thread(recorder.stop)  # writes what is still queued
            database.dispose()

    app = FastAPI(
        title="tierkit logic tier",
        version="0.1.0",
        description=(
            "Validates raw business records, runs the feature processing of the model version "
            "that serves them and calls the graph tier (TF Serving or graph_service)."
        ),
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hooks look up the global tracer, meter and
        # logger providers on every request (about 6% of a request's CPU here) to
        # find them unconfigured; the tier measures itself with Prometheus (/metrics).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    install_cors(app, settings.security)
    # one rule for who may read what (issue 28): a key with the route's scope (docs/security.md)
    guard = CallerGuard(settings.security, settings.admin_token)
    app.include_router(feedback_router(), dependencies=[Depends(guard.require("feedback"))])
    app.include_router(evaluation_router(), dependencies=[Depends(guard.require("read"))])
    app.include_router(admin_router())  # /admin/rollouts, /admin/models: the admin token
    app.include_router(api_admin_router())  # /admin/apis: retire an API version (issue #24)
    # /dashboard and its JSON feed (issue #6): the evaluation's rule, and a browser may
    # answer the challenge with HTTP Basic (the key as password)
    app.include_router(
        dashboard_router(), dependencies=[Depends(guard.require("read", browser=True))]
    )
    app.mount(STATIC_PATH, static_files(), name="dashboard-static")  # script, style: no data
    # predict per API version (/v1, /v2...), routed or pinned to a version or label (issue #24)
    app.include_router(predict_router(), dependencies=[Depends(guard.require("predict"))])
    # /healthz, /readyz: open to probes; /metrics: open, or its own token (issue 28)
    app.include_router(health_router([Depends(metrics_guard(settings.security))]))
    install_api_openapi(app, apis, settings.stable_label)
    return app


def app_from_environment() -> FastAPI:
    """Factory for uvicorn workers: settings from $TIERKIT_LOGIC_CONFIG and TIERKIT_* vars."""
    return create_app(load_settings())
