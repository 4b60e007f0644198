"""Which models there are: every entry of models.config and every model folder of the repository.

Serving a new model must not need an edit of logic.yaml and a restart: the
repository (``model_repository``) is the truth, as it is for versions. A model
folder is a directory whose name is a valid model name holding at least one
integer-named version folder with a SavedModel in it (what ``python -m export``
publishes, what TF Serving loads). models.config entries count too (their
``base_path`` is where their versions are). logic.yaml's ``models:`` only adds
per-model settings (signature, deadline, rollout, API versions) and makes a
model required for readiness from the start.

Read every refresh (a directory listing, a few ``stat`` calls); a model folder
removed stays known (it then has no version to serve), as a configured one does.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def _has_version(folder: Path) -> bool:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    for entry in entries:
        if entry.name.isdigit() and entry.name.isascii():
            version = Path(entry.path)
            if any((version / name).is_file() for name in SAVED_MODEL_FILES):
                return True
    return False


def repository_models(repository: Path) -> dict[str, Path]:
    """``{name: folder}`` of every model folder with a published version."""
    try:
        entries = sorted(os.scandir(repository), key=lambda e: e.name)
    except OSError:
        return {}
    found: dict[str, Path] = {}
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir and _MODEL_NAME.match(entry.name) and _has_version(Path(entry.path)):
            found[entry.name] = Path(entry.path)
    return found


def config_models(models_config: Path) -> dict[str, Path]:
    """``{name: base folder}`` of models.config's entries (URIs and unreadable files: none)."""
    try:
        text = models_config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError:
        return {}  # the keeper and the graph tier say why, in their words
    found: dict[str, Path] = {}
    for entry in config.model_config_list.config:
        if "://" in entry.base_path or not _MODEL_NAME.match(entry.name):
            continue
        found[entry.name] = Path(entry.base_path)  # relative: to the working directory
    return found


def discover(repository: Path, models_config: Path | None) -> dict[str, Path]:
    """Every model to serve beside logic.yaml's: models.config's, then the repository's."""
    found = repository_models(repository)
    if models_config is not None:
        found.update(config_models(models_config))
    return found
