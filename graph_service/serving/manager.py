"""The aspired-versions manager: loads, unloads and hands out servable versions.

Mirrors TF Serving's AspiredVersionsManager with the AvailabilityPreservingPolicy:

- the source says which versions each model *aspires* to (``set_aspired``);
- one background loader thread takes one action at a time, the one the pure
  ``availability_policy.next_action`` names: first unload a version nobody
  aspires to, but only while an aspired version is serving (or none is aspired
  at all, or two unaspired ones serve); otherwise load the highest new aspired
  version. So a new version is loaded (and warmed up) before the old one goes,
  and a version that fails to load leaves the old one serving;
- requests hold a ``ServableHandle`` (a reference count) for their whole
  duration; an unloading version leaves the serving set at once, but its session
  is closed only after the last handle is released, so requests in flight
  finish on the version they started on;
- every version's state (START, LOADING, AVAILABLE, UNLOADING, END, with the
  load error if any) is kept for GetModelStatus, also after it ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from graph_service.errors import ServingError, not_found
from graph_service.runtime.servable import Servable
from graph_service.serving.availability_policy import UNLOAD, VersionSnapshot, next_action
from graph_service.serving.handle import ServableHandle
from graph_service.serving.version_state import State, VersionEntry, VersionStatus

log = logging.getLogger("graph_service")

_AVAILABLE = State.AVAILABLE  # read on every request (an enum attribute lookup costs more)

# (model, version, event, seconds, error): event is "loaded", "load_failed" or "unloaded".
EventListener = Callable[[str, int, str, float, "ServingError | None"], None]
LoadFunction = Callable[[str, int, Path], Servable]


@dataclass
class _Model:
    aspired: dict[int, Path] = field(default_factory=dict)
    versions: dict[int, VersionEntry] = field(default_factory=dict)


class Manager:
    """Owns every loaded version; thread-safe; never raises into the loader thread."""

    def __init__(
        self,
        load: LoadFunction,
        *,
        max_load_retries: int = 5,
        load_retry_interval_s: float = 60.0,
        listener: EventListener | None = None,
    ) -> None:
        self._load = load
        self._max_load_retries = max_load_retries
        self._retry_interval = load_retry_interval_s
        self._listener = listener
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._loader = threading.Thread(target=self._load_loop, name="servable-loader", daemon=True)
        self._unloader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="servable-unloader")

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._loader.start()

    def stop(self) -> None:
        """Stop loading and unload everything (waiting for requests in flight)."""
        with self._lock:
            self._stopping = True
            for model in self._models.values():
                model.aspired = {}
                for entry in model.versions.values():
                    entry.cancel_load = True
            self._changed.notify_all()
        if self._loader.is_alive():
            self._loader.join(timeout=60)
        with self._lock:
            to_unload = [
                (name, e)
                for name, m in self._models.items()
                for e in m.versions.values()
                if e.state == State.AVAILABLE
            ]
            for _, entry in to_unload:
                entry.state = State.UNLOADING
        for name, entry in to_unload:
            self._unloader.submit(self._unload, name, entry)
        self._unloader.shutdown(wait=True)

    # ------------------------------------------------------------------- source
    def set_aspired(self, name: str, versions: dict[int, Path]) -> None:
        """The source's view: these versions of ``name`` should be served."""
        with self._lock:
            if self._stopping:
                return
            model = self._models.setdefault(name, _Model())
            if model.aspired == versions:
                return
            model.aspired = dict(versions)
            for version, path in versions.items():
                entry = model.versions.get(version)
                if entry is None or not entry.in_manager:
                    model.versions[version] = VersionEntry(version, path)
            for version, entry in model.versions.items():
                if version not in versions:
                    entry.cancel_load = True
            self._changed.notify_all()

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def aspired(self, name: str) -> dict[int, Path]:
        with self._lock:
            model = self._models.get(name)
            return dict(model.aspired) if model else {}

    # ----------------------------------------------------------------- requests
    def acquire(self, name: str, version: int | None) -> ServableHandle:
        """A handle on ``version`` (or the highest available one); NOT_FOUND otherwise."""
        with self._lock:
            model = self._models.get(name)
            entry: VersionEntry | None = None
            if model is not None:
                if version is None:
                    for candidate in model.versions.values():  # the highest AVAILABLE one
                        if candidate.state is _AVAILABLE and (
                            entry is None or candidate.version > entry.version
                        ):
                            entry = candidate
                else:
                    candidate = model.versions.get(version)
                    if candidate is not None and candidate.state is _AVAILABLE:
                        entry = candidate
            if entry is None:
                request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
                raise not_found(f"Servable not found for request: {request}")
            entry.handles += 1
            return ServableHandle(self._release, entry)

    def _release(self, entry: VersionEntry) -> None:
        with self._lock:
            entry.handles -= 1
            # Only an unload waits for a version's last handle. Notifying on every
            # request's release woke the loader thread once per request, for a GIL
            # round trip and a context switch on the serving path.
            if entry.handles == 0 and entry.state == State.UNLOADING:
                self._changed.notify_all()

    # ------------------------------------------------------------------- status
    def statuses(self, name: str) -> list[VersionStatus]:
        """Every version the manager has seen for ``name``, highest first (as TF Serving)."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return []
            return [
                VersionStatus(e.version, e.state, e.error)
                for e in sorted(model.versions.values(), key=lambda e: -e.version)
            ]

    def available_versions(self, name: str) -> set[int]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return set()
            return {v for v, e in model.versions.items() if e.state == State.AVAILABLE}

    def wait_until_settled(self, names: Iterable[str], timeout: float) -> dict[str, str | None]:
        """Wait until no aspired version of ``names`` is still new or loading.

        Returns ``{name: None}`` for a model with an AVAILABLE version, else the
        reason it has none (its load error, or that nothing was aspired).
        """
        names = list(names)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._stopping:
                pending = [n for n in names if self._is_pending(n)]
                remaining = deadline - time.monotonic()
                if not pending or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 1.0))
            result: dict[str, str | None] = {}
            for name in names:
                model = self._models.get(name)
                versions = model.versions.values() if model else []
                if any(e.state == State.AVAILABLE for e in versions):
                    result[name] = None
                    continue
                errors = [
                    f"{{name: {name} version: {e.version}}} due to error: {e.error.message}"
                    for e in versions
                    if e.error is not None and e.in_manager
                ]
                if errors:
                    result[name] = "; ".join(errors)
                elif self._is_pending(name):
                    result[name] = f"{{name: {name}}} is still loading"
                else:
                    result[name] = f"{{name: {name}}} has no version to serve"
            return result

    def _is_pending(self, name: str) -> bool:
        model = self._models.get(name)
        if model is None:
            return False
        return any(
            model.versions[v].state in (State.START, State.LOADING)
            for v in model.aspired
            if v in model.versions
        )

    # -------------------------------------------------------------- loader loop
    def _load_loop(self) -> None:
        while True:
            with self._lock:
                action = None
                while not self._stopping:
                    action = self._next_action()
                    if action is not None:
                        break
                    self._changed.wait()
                if action is None:
                    return
            kind, name, entry = action
            if kind == "load":
                self._load_version(name, entry)
            else:
                self._unloader.submit(self._unload, name, entry)

    def _next_action(self) -> tuple[str, str, VersionEntry] | None:
        """The policy's next action over all models; called with the lock held.

        First the bookkeeping TF Serving's manager does before it asks its policy
        (a re-aspired version that was unloaded gets a fresh entry; an unaspired
        one that never loaded leaves the manager), then availability_policy decides
        and the chosen version's state changes here, under the lock.
        """
        for name in sorted(self._models):
            model = self._models[name]
            for version, entry in list(model.versions.items()):
                unaspired = version not in model.aspired
                if not unaspired and entry.state == State.END and entry.error is None:
                    # Unloaded while (re-)aspired: it gets a fresh load, as TF Serving
                    # re-adds a version the source still lists after it left the manager.
                    model.versions[version] = VersionEntry(version, model.aspired[version])
                    continue
                if unaspired and entry.in_manager and entry.state in (State.START, State.END):
                    entry.in_manager = False
                    if entry.state == State.START:
                        entry.state = State.END
                        self._changed.notify_all()
            live = {v: e for v, e in model.versions.items() if e.in_manager}
            action = next_action(
                VersionSnapshot(v, e.state, v in model.aspired) for v, e in live.items()
            )
            if action is None:
                continue
            entry = live[action.version]
            if action.kind == UNLOAD:
                entry.state = State.UNLOADING  # leaves the serving set right now
                self._changed.notify_all()
                return ("unload", name, entry)
            entry.state = State.LOADING
            entry.cancel_load = False
            self._changed.notify_all()
            return ("load", name, entry)
        return None

    def _load_version(self, name: str, entry: VersionEntry) -> None:
        started = time.monotonic()
        error: ServingError | None = None
        servable: Servable | None = None
        for attempt in range(self._max_load_retries + 1):
            log.info("Loading servable: {name: %s version: %d}", name, entry.version)
            try:
                servable = self._load(name, entry.version, entry.path)
                error = None
                break
            except ServingError as exc:
                error = exc
            except Exception as exc:  # a loader must never kill the loader thread
                log.exception("Unexpected error loading %s version %d", name, entry.version)
                error = ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            if attempt < self._max_load_retries:
                log.warning(
                    "Loading servable: {name: %s version: %d} failed: %s; retrying in %.1f s "
                    "(%d retries left)",
                    name,
                    entry.version,
                    error.message,
                    self._retry_interval,
                    self._max_load_retries - attempt,
                )
                with self._lock:
                    self._changed.wait_for(
                        lambda: entry.cancel_load or self._stopping, self._retry_interval
                    )
                    if entry.cancel_load or self._stopping:
                        error = ServingError(
                            grpc.StatusCode.CANCELLED,
                            "Loading of servable cancelled",
                        )
                        break
        elapsed = time.monotonic() - started
        with self._lock:
            if servable is not None and error is None:
                entry.servable = servable
                entry.state = State.AVAILABLE
                log.info(
                    "Successfully loaded servable version {name: %s version: %d} in %.2f s",
                    name,
                    entry.version,
                    elapsed,
                )
            else:
                entry.state = State.END
                entry.error = error
                log.error(
                    "Loading servable: {name: %s version: %d} failed: %s",
                    name,
                    entry.version,
                    error.message if error else "unknown error",
                )
            self._changed.notify_all()
        event = "loaded" if error is None else "load_failed"
        self._emit(name, entry.version, event, elapsed, error)

    def _unload(self, name: str, entry: VersionEntry) -> None:
        started = time.monotonic()
        with self._lock:
            if entry.handles:
                log.info(
                    "Unloading {name: %s version: %d}: waiting for %d request(s) in flight",
                    name,
                    entry.version,
                    entry.handles,
                )
            self._changed.wait_for(lambda: entry.handles == 0)
            servable, entry.servable = entry.servable, None
        try:
            if servable is not None:
                servable.close()
        except Exception:
            log.exception("Error closing %s version %d", name, entry.version)
        with self._lock:
            entry.state = State.END
            self._changed.notify_all()
        log.info("Done unloading servable version {name: %s version: %d}", name, entry.version)
        self._emit(name, entry.version, "unloaded", time.monotonic() - started, None)

    def _emit(
        self, name: str, version: int, event: str, seconds: float, error: ServingError | None
    ) -> None:
        if self._listener is None:
            return
        try:
            self._listener(name, version, event, seconds, error)
        except Exception:
            log.exception("servable event listener failed")
