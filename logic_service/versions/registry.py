"""What each model can serve right now, kept current in the background.

The graph tier is the authority on which versions exist (its model status,
read every ``status_refresh_s`` and again whenever a call answers NOT_FOUND).
Each version's artifacts (manifest, schema, feature function, transformer) are
loaded in a worker thread as soon as the version is seen, on the graph tier or
already on disk while the graph tier is still warming it up, and a version is
routed to only once both hold: AVAILABLE on the graph tier and artifacts
loaded. So a new version is taken up without a restart and without making the
first request that meets it pay for the loading.

Models are found the same way (``discovery``): logic.yaml's ``models:``, every
entry of models.config and every model folder of the repository, re-read at
each refresh, so a model published for the first time is served without an
edit or a restart. logic.yaml's models are required for readiness from the
start; a discovered one once it has served.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from logic_service.graph.client import (
    GraphClient,
    GraphError,
    GraphTimeout,
    GraphUnavailable,
    VersionNotFound,
    VersionStatus,
)
from logic_service.manifest import ManifestMissing
from logic_service.settings import LogicSettings, ModelSettings
from logic_service.versions.artifacts import (
    VersionArtifacts,
    load_version,
    tensor_only_version,
    warm_transformer_imports,
)
from logic_service.versions.discovery import discover
from logic_service.versions.model_state import ModelState, VersionView
from logic_service.versions.routable import RoutableModel

log = logging.getLogger(__name__)


class ModelRegistry:
    def __init__(self, settings: LogicSettings, client: GraphClient) -> None:
        self.settings = settings
        self.client = client
        self.graph_reachable = False
        self.graph_problem = "graph tier not contacted yet"
        self._was_reachable = False
        self._status_timeout = max(0.2, min(2.0, settings.graph.deadline_ms / 1000.0))
        self._models = {
            m.name: ModelState(m, settings.base_path(m).resolve()) for m in settings.models
        }
        self.discover()
        self._refreshing: dict[str, asyncio.Task] = {}
        self._refresh_began: dict[str, float] = {}  # time.monotonic() of the running one
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tierkit-artifacts")
        self._loop_task: asyncio.Task | None = None
        # Labels beyond the stable one that routing needs (set by the app from the rollouts).
        self.label_names: Callable[[str], Iterable[str]] = lambda model: ()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self, wait_s: float = 0.0) -> None:
        """First status read, then (up to ``wait_s``) the artifacts it asked for.

        Why wait: uvicorn listens only once the app's startup is done. A replica
        that listened before its versions' artifacts were in memory would hold
        the requests a load balancer sends it for as long as the load takes (a
        restarted replica in the compose stack held them 1.6 s); one that is not
        listening yet is skipped at once (connection refused).
        """
        if any(state.newest_uses_skops() for state in self._models.values()):
            # importing scikit-learn and pandas (~1.5 s) overlaps the graph tier's start
            self._executor.submit(warm_transformer_imports)
        await self.refresh_all()
        loading = [t for state in self._models.values() for t in state.loading.values()]
        if wait_s > 0 and loading:
            _done, pending = await asyncio.wait(loading, timeout=wait_s)
            if pending:
                log.warning(
                    "%d version load(s) still running after %.0f s; accepting requests anyway",
                    len(pending),
                    wait_s,
                )
        self._loop_task = asyncio.create_task(self._refresh_forever(), name="tierkit-registry")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for state in self._models.values():
            for task in state.loading.values():
                task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.status_refresh_s)
            try:
                await self.refresh_all()
            except Exception:  # never let the refresher die: it is what heals the service
                log.exception("model status refresh failed")

    def discover(self, found: dict[str, Path] | None = None) -> list[str]:
        """Add the models of models.config and of the repository not known yet; their names.

        ``found`` is what ``discovery.discover`` listed (in a thread, by the refresher);
        the registry itself changes on the event loop only.
        """
        if found is None:
            found = self._find()
        added = [name for name in found if name not in self._models]
        for name in added:
            self._models[name] = ModelState(
                ModelSettings(name=name), found[name].resolve(), configured=False
            )
            log.info("model %s: found in %s; serving it", name, found[name])
        return added

    def _find(self) -> dict[str, Path]:
        return discover(self.settings.model_repository, self.settings.graph_config.models_config)

    def trusted_repositories(self) -> list[Path]:
        """Where versions may run code (docs/security.md): the listed folders, and with
        ``trust_model_repository`` the repository and every model's base path."""
        features = self.settings.features
        roots = {path.resolve() for path in features.trusted_repositories}
        if features.trust_model_repository:
            roots.add(self.settings.model_repository.resolve())
            roots |= {state.base_path for state in self._models.values()}
        return sorted(roots)

    # ---- queries (no I/O; safe per request) -----------------------------------------------

    def model_names(self) -> list[str]:
        return list(self._models)

    def knows(self, model: str) -> bool:
        return model in self._models

    def settings_of(self, model: str) -> ModelSettings:
        return self._models[model].settings

    def routable(self, model: str) -> RoutableModel:
        state = self._models[model]
        if state.routable is None:
            state.routable = RoutableModel(model, (), {})
        return state.routable

    def artifacts(self, model: str, version: int) -> VersionArtifacts | None:
        return self._models[model].artifacts.get(version)

    def readiness(self) -> list[str]:
        """Reasons the service cannot serve everything configured; empty when ready."""
        reasons: list[str] = []
        if not self.graph_reachable:
            reasons.append(f"graph tier unreachable: {self.graph_problem}")
        for name, state in self._models.items():
            if self.routable(name).ready_versions or not (state.configured or state.served):
                continue
            why = state.problem or "no AVAILABLE version with loaded artifacts"
            if state.failed:
                why += "; failed: " + "; ".join(
                    f"{v}: {e}" for v, e in sorted(state.failed.items())
                )
            elif state.loading:
                why += f"; loading artifacts of {sorted(state.loading)}"
            reasons.append(f"model {name}: {why}")
        return reasons

    def describe(self) -> dict[str, dict]:
        return {name: state.describe() for name, state in self._models.items()}

    def version_view(self, model: str) -> VersionView:
        """What is known of each version: graph-tier states (load errors too), every label
        resolved, published folders, versions whose artifacts were refused (pinning/)."""
        state = self._models[model]
        return VersionView(
            dict(state.graph),
            dict(state.labels),
            self.published_versions(model) if state.base_path.is_dir() else None,
            dict(state.failed),
            self.routable(model).ready_versions,
        )

    def holdable_versions(self, model: str) -> tuple[int, ...]:
        """What the keeper may hold as the last servable version (``pinning.in_use``).

        The ready versions; while none is ready yet (a fresh start: the artifacts
        of the version the graph tier serves are still loading), the oldest
        AVAILABLE version not refused. Holding nothing then would let a version
        published in that window unload the one about to serve, and if the new
        one is refused the model has nothing left (seen on CI: a broken version
        published 10 s after start). The oldest, so a newer one that also loads
        does not displace it before either is ready.
        """
        ready = self.routable(model).ready_versions
        if ready:
            return ready
        state = self._models[model]
        waiting = [v for v in state.available() if v not in state.failed]
        return tuple(waiting[:1])

    def published_versions(self, model: str) -> set[int]:
        """Version folders of ``model`` in the logic tier's repository (any integer name)."""
        try:
            entries = list(self._models[model].base_path.iterdir())
        except OSError:
            return set()
        return {int(p.name) for p in entries if p.name.isdigit() and p.is_dir()}

    def refused_versions(self, model: str) -> list[int]:
        """Versions whose artifacts failed to load: why a model may have nothing to serve."""
        return sorted(self._models[model].failed)

    async def wait_for_loads(self, model: str, timeout_s: float) -> bool:
        """Wait (bounded) for artifact loads under way; True if there were any.

        A version can go from unknown to AVAILABLE while its predecessor is
        unloaded between two status reads; the request that finds no version
        ready then waits for the load instead of failing.
        """
        tasks = list(self._models[model].loading.values())
        if not tasks:
            return False
        await asyncio.wait([asyncio.shield(t) for t in tasks], timeout=timeout_s)
        return True

    async def wait_for_artifacts(self, model: str, version: int, timeout_s: float) -> bool:
        task = self._models[model].loading.get(version)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
        return version in self._models[model].artifacts

    # ---- refreshing -------------------------------------------------------------------------

    async def refresh_all(self) -> None:
        self.discover(await asyncio.to_thread(self._find))
        await asyncio.gather(*(self.refresh(name) for name in list(self._models)))

    async def refresh(self, model: str, *, seen_at: float | None = None) -> None:
        """Re-read one model's status; concurrent callers share one round trip.

        ``seen_at`` (``time.monotonic()``): the caller saw the graph tier change
        then, so only a status read that began after it can answer. A round trip
        already in flight that began earlier may have read the old state (the
        version that just went away still AVAILABLE): wait for it, then read again.
        """
        while True:
            running = self._refreshing.get(model)
            if running is None:
                # A fresh context: the refresh serves every request, its logs carry none's id.
                running = asyncio.create_task(
                    self._refresh(self._models[model]), context=contextvars.Context()
                )
                self._refreshing[model] = running
                self._refresh_began[model] = time.monotonic()
                running.add_done_callback(lambda t: self._forget_refresh(model, t))
                break
            if seen_at is None or self._refresh_began.get(model, 0.0) >= seen_at:
                break
            await asyncio.shield(running)  # began before the change: its answer is stale
        await asyncio.shield(running)

    def _forget_refresh(self, model: str, task: asyncio.Task) -> None:
        if self._refreshing.get(model) is task:
            del self._refreshing[model]

    async def _refresh(self, state: ModelState) -> None:
        name = state.settings.name
        try:
            statuses = await self.client.model_status(name, self._status_timeout)
            labels = await self._labels(name)
        except (GraphUnavailable, GraphTimeout) as exc:
            self._set_reachable(False, str(exc))
            return  # keep what we knew: calls fail fast with 503 until the graph tier is back
        except VersionNotFound as exc:
            self._set_reachable(True, "")
            statuses, labels = [], {}
            state.set_problem(f"not served by the graph tier ({exc})")
        except GraphError as exc:
            self._set_reachable(True, "")
            state.set_problem(f"graph tier status error: {exc}")
            return
        else:
            self._set_reachable(True, "")
            state.set_problem("")
        state.graph = {s.version: s for s in statuses}
        state.labels = labels
        self._start_loads(state)
        state.prune()
        state.publish()

    async def _labels(self, model: str) -> dict[str, int]:
        """The stable label plus every label a rollout of this model routes to."""
        names = sorted({self.settings.stable_label, *self.label_names(model)})
        versions = await asyncio.gather(
            *(self.client.resolve_label(model, name, self._status_timeout) for name in names)
        )
        return {name: v for name, v in zip(names, versions, strict=True) if v is not None}

    def _set_reachable(self, reachable: bool, problem: str) -> None:
        if reachable != self.graph_reachable:
            if reachable:
                log.info("graph tier reachable%s", " again" if self._was_reachable else "")
                self._was_reachable = True
            else:
                log.warning("graph tier unreachable: %s", problem)
        self.graph_reachable = reachable
        self.graph_problem = problem

    def _start_loads(self, state: ModelState) -> None:
        for version in sorted(state.wanted()):
            if version in state.artifacts or version in state.loading or version in state.failed:
                continue
            task = asyncio.create_task(self._load(state, version), context=contextvars.Context())
            state.loading[version] = task

    async def _load(self, state: ModelState, version: int) -> None:
        name, settings = state.settings.name, state.settings
        started = time.perf_counter()
        try:
            try:
                artifacts = await asyncio.get_running_loop().run_in_executor(
                    self._executor,
                    load_version,
                    name,
                    version,
                    state.base_path / str(version),
                    settings.signature_name,
                    self.settings.features.allow_pickle,
                    self.trusted_repositories(),
                )
            except ManifestMissing:
                if state.graph.get(version, VersionStatus(version, "")).state != "AVAILABLE":
                    return  # retried at the next refresh, once the graph tier can describe it
                signature = await self.client.signature(
                    name, version, settings.signature_name, self._status_timeout
                )
                artifacts = tensor_only_version(name, version, settings.signature_name, signature)
            state.artifacts[version] = artifacts
            copied_from = artifacts.manifest.copied_from if artifacts.manifest else None
            if copied_from is not None:
                log.warning(
                    "model %s: version %d is a copy of version %d (the same SavedModel files); "
                    "serving it with that version's manifest",
                    name,
                    version,
                    copied_from,
                )
            gc.freeze()  # a version's transformer is long-lived: keep the collector off it
            log.info(
                "model %s: artifacts of version %d loaded in %.0f ms",
                name,
                version,
                (time.perf_counter() - started) * 1000,
            )
        except (GraphUnavailable, GraphTimeout) as exc:
            log.warning("model %s/%d: metadata not readable yet: %s", name, version, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken version must not stop the others from loading
            state.failed[version] = f"{type(exc).__name__}: {exc}"
            serving = list(self.routable(name).ready_versions)
            log.error(
                "model %s: version %d cannot be served: %s; %s",
                name,
                version,
                exc,
                f"versions {serving} keep serving (the last servable one stays loaded)"
                if serving
                else "no other version is ready",
            )
        finally:
            state.loading.pop(version, None)
            state.publish()
