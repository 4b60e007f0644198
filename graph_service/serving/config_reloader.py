"""The model config and the file-system source: what should be served, from where.

TF Serving's ServerCore::ReloadConfig and FileSystemStoragePathSource in one
place: a new ``ModelServerConfig`` is validated (the previous one stays if it
is refused), its version labels are checked, and every base path is scanned;
the versions each model's policy aspires to go to the manager. The same scan
runs every ``--file_system_poll_wait_seconds``, and the config file is re-read
every ``--model_config_file_poll_wait_seconds``.

Deliberate differences from TF Serving, both in the direction of staying up:
a model that cannot load at startup is logged and reported in GetModelStatus
instead of aborting the server, and the config file poll re-applies the file
only when its content changed, so a config set by HandleReloadConfigRequest
stays until the file is edited.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import grpc
from google.protobuf import text_format

from graph_service.errors import ServingError, failed_precondition, invalid_argument
from graph_service.runtime.trace_events import traced
from graph_service.serving.manager import Manager
from graph_service.serving.server_config import (
    ConfigFileError,
    ModelServerConfig,
    describe,
    read_model_server_config,
    validate_config,
)
from graph_service.serving.source import scan_versions
from graph_service.serving.version_policy import aspired_versions

log = logging.getLogger("graph_service")


class ConfigReloader:
    """Holds the current config and labels; feeds the manager from the file system."""

    def __init__(
        self,
        manager: Manager,
        *,
        file_system_poll_wait_seconds: int,
        allow_version_labels_for_unavailable_models: bool,
        reload_wait_seconds: float,
    ) -> None:
        self._manager = manager
        self._poll_seconds = file_system_poll_wait_seconds
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._reload_wait_seconds = reload_wait_seconds
        self._config = ModelServerConfig()
        self._labels: dict[str, dict[str, int]] = {}
        # Re-entrant: apply() scans the sources while holding it.
        self._lock = threading.RLock()
        self._scan_errors: dict[str, str | None] = {}
        self._file_text: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ================================================================ lifecycle
    def start(self, config: ModelServerConfig, initial_wait_seconds: float) -> None:
        """Apply the first config, wait for the first loads, then poll the file system."""
        self.apply(config, wait_seconds=initial_wait_seconds, initial=True)
        if self._poll_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll_loop, name="storage-path-source", daemon=True
            )
            self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)

    @property
    def config(self) -> ModelServerConfig:
        with self._lock:
            copy = ModelServerConfig()
            copy.CopyFrom(self._config)
            return copy

    def label_version(self, name: str, label: str) -> int:
        """ServerCore::GetModelVersionForLabel (INVALID_ARGUMENT when unknown, as TF)."""
        version = self._labels.get(name, {}).get(label)
        if version is None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    # ================================================================== reloads
    def apply(
        self, new: ModelServerConfig, *, wait_seconds: float | None = None, initial: bool = False
    ) -> None:
        """ServerCore::ReloadConfig: validate, relabel, re-point the source, await new models.

        Raises ServingError and keeps the previous config when the new one is refused.
        """
        with self._lock:
            current = self._config if self._config.WhichOneof("config") else None
            resolved = validate_config(new, current)
            if resolved.WhichOneof("config") is None:
                log.info("Taking no action for empty config.")
                return
            labels = self._labels_for(resolved)
            old_names = {m.name for m in self._config.model_config_list.config}
            new_names = [
                m.name for m in resolved.model_config_list.config if m.name not in old_names
            ]
            self._config = resolved
            self._labels = labels
            log.info("Adding/updating models: %s", describe(resolved))
            self.scan()
        wait = self._reload_wait_seconds if wait_seconds is None else wait_seconds
        outcome = self._manager.wait_until_settled(new_names, wait)
        failed = {name: why for name, why in outcome.items() if why is not None}
        if failed:
            message = (
                f"{len(failed)} model(s) did not become available: {{"
                + ", ".join(f"{{{why}}}" for why in failed.values())
                + ", }"
            )
            if not initial:
                raise ServingError(grpc.StatusCode.UNKNOWN, message)
            log.error("%s", message)
        log.info("Finished adding/updating models")

    def reload_from_file(self, path: str) -> bool:
        """Config-file poll: re-apply when the content changed; log (never raise) errors."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            log.error("Failed to read model config file %s: %s", path, exc.strerror)
            return False
        if text == self._file_text:
            return False
        self._file_text = text  # a broken file is reported once, not every poll
        try:
            config = read_model_server_config(path)
        except ConfigFileError as exc:
            log.error("Keeping the current models; %s", exc)
            return False
        try:
            self.apply(config)
        except ServingError as exc:
            log.error("ReloadConfig from %s failed: %s", path, exc.message)
            return False
        return True

    def remember_file(self, path: str) -> None:
        """Record the file content applied at start so the poll only reacts to changes.

        The file may have changed since it was read at start (the logic tier's
        keeper rewrites it while the first models load): its content is then not
        what is applied, so nothing is remembered and the first poll applies it.
        """
        try:
            text = Path(path).read_text()
            on_file = ModelServerConfig()
            text_format.Parse(text, on_file)
            with self._lock:
                applied = validate_config(on_file, None) == self._config
        except (OSError, text_format.ParseError, ServingError):
            applied = False
        self._file_text = text if applied else None

    def _labels_for(self, config: ModelServerConfig) -> dict[str, dict[str, int]]:
        """ServerCore::UpdateModelVersionLabelMap, with its availability rule."""
        result: dict[str, dict[str, int]] = {}
        for model in config.model_config_list.config:
            available = self._manager.available_versions(model.name)
            for label, version in model.version_labels.items():
                allow = False
                if self._allow_unavailable_labels:
                    existing = self._labels.get(model.name, {}).get(label)
                    allow = existing is None or existing == version
                if not allow and version not in available:
                    raise failed_precondition(
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference"
                    )
                result.setdefault(model.name, {})[label] = version
        return result

    # =================================================================== source
    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                with traced("FileSystemStoragePathSource::PollFileSystem"):
                    self.scan()
            except Exception:
                log.exception("file system poll failed")

    def scan(self) -> None:
        """One look at every base path; the policy's versions go to the manager.

        Runs under the config lock so a poll never acts on a config that a
        reload has just replaced. Problems are logged once per change, not
        every poll.
        """
        with self._lock:
            models = list(self._config.model_config_list.config)
            for model in models:
                scan = scan_versions(model.name, model.base_path)
                self._log_once(model.name, scan.error)
                policy = model.model_version_policy
                wanted = aspired_versions(policy, scan.versions)
                if policy.WhichOneof("policy_choice") == "specific":
                    missing = sorted(set(policy.specific.versions) - set(scan.versions))
                    self._log_once(
                        f"{model.name}#specific",
                        f"Versions {missing} of servable {model.name} requested by the "
                        f"specific policy are not under {model.base_path}"
                        if missing
                        else None,
                    )
                self._manager.set_aspired(model.name, {v: scan.versions[v] for v in wanted})
            configured = {m.name for m in models}
            for name in self._manager.model_names():
                if name not in configured:
                    self._manager.set_aspired(name, {})

    def _log_once(self, key: str, problem: str | None) -> None:
        if problem != self._scan_errors.get(key):
            if problem:
                log.warning("%s", problem)
            self._scan_errors[key] = problem
