"""The running tier's parts, typed: built once by the app's lifespan, read by every router.

Routers, the dashboard and pinning need the same handful of parts (settings,
the registry, the database, the rollout policy, the predict service...).
Attributes set one by one on ``app.state`` let each reach for a part by name,
with nothing to say which exist, when they are set or what type they have.
``app.py``'s lifespan builds one ``Services`` once every part has started and
keeps it on the app; ``services_of(app)`` is the one way to reach it
(``services_of(request.app)`` in a route).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from logic_service.observability.metrics import Metrics
from logic_service.pinning.keeper import GraphConfigKeeper
from logic_service.prediction.service import PredictService
from logic_service.routing.api_versions import ApiCatalog
from logic_service.routing.pinned import PinnedRoutes
from logic_service.routing.rollout_policy import RolloutPolicy
from logic_service.routing.shadow import ShadowRunner
from logic_service.settings import LogicSettings
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.versions.registry import ModelRegistry


@dataclass(frozen=True)
class Services:
    settings: LogicSettings
    metrics: Metrics
    registry: ModelRegistry  # what each model can serve now
    database: Engine  # the shared database: prediction log, rollouts, pins, retired APIs
    prediction_log: PredictionRecorder  # its writer; predictor records only when configured
    rollouts: RolloutPolicy  # each model's rollout, routing per request
    apis: ApiCatalog  # which versions serve which request API (v1, v2...)
    pins: PinnedRoutes  # predict pinned to a version or label by the caller
    shadow: ShadowRunner  # shadow copies in flight and their comparisons
    predictor: PredictService  # one predict request, end to end
    keeper: GraphConfigKeeper | None  # versions in use stay loaded (None: pinning off)


def services_of(app: Starlette) -> Services:
    """The app's ``Services``; only once its lifespan has started them."""
    services = getattr(app.state, "services", None)
    if services is None:
        raise RuntimeError("the app's services are built when it starts (its lifespan)")
    return services
