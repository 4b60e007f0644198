"""``/dashboard``: the page operators look at to decide a rollout, its JSON feed, its assets.

The feed itself is ``dashboard/feed.py``'s (every worker reads the shared
database, so any of them answers the poll with the same view); here are the
routes, and the page's files under ``/dashboard/static``. The app includes
the routes behind the ``read`` scope, the evaluation endpoint's rule
(``api/security.py``); the static files hold no data and stay open.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from logic_service.api.json_body import json_response
from logic_service.dashboard import STATIC_DIR
from logic_service.dashboard.feed import HISTORY_S, build_summary
from logic_service.errors import unknown_model
from logic_service.services import services_of

STATIC_PATH = "/dashboard/static"


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["dashboard"])

    @router.get("/dashboard", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html")

    @router.get("/dashboard/api/summary", summary="What the dashboard shows, as JSON")
    async def summary(
        request: Request,
        model: str | None = Query(None, description="Only this model."),
        history_s: int = Query(
            HISTORY_S, ge=30, le=3600, description="Seconds of traffic history in the charts."
        ),
    ) -> Response:
        services = services_of(request.app)
        names = services.registry.model_names()  # logic.yaml's and discovered
        if model is not None and model not in names:
            raise unknown_model(model, names, "model: ")
        body = await run_in_threadpool(build_summary, services, history_s)
        if model is not None:
            body["models"] = [m for m in body["models"] if m["name"] == model]
        return json_response(body, headers={"Cache-Control": "no-store"})

    return router


def static_files() -> StaticFiles:
    """The page's script and style, mounted at ``STATIC_PATH``."""
    return StaticFiles(directory=STATIC_DIR)
