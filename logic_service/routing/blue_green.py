"""Blue-green label moves on the graph tier: edit ``models.config``, then reload it.

Routing itself switches in the logic tier (the rollout state names the active
version); this module makes clients that call the graph tier by label follow:
``stable`` moves to the new active version and ``canary`` to the standby, in
the ``models.config`` file (edited by export's own editor with TF Serving's
proto type, replaced atomically) and in the running server through
``HandleReloadConfigRequest`` on the official ModelService stub. If the server
refuses the new config, the file is put back as it was, so file and server
never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from logic_service.codecs import serving_protos  # noqa: F401 - loads the protos without TensorFlow

log = logging.getLogger(__name__)


class LabelMoveFailed(RuntimeError):
    """The labels could not be moved; nothing was changed."""


def reload_config(address: str, config: object, timeout_s: float) -> None:
    """Send the whole ModelServerConfig to the graph tier; raises unless it answers OK."""
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    with grpc.insecure_channel(address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        try:
            response = stub.HandleReloadConfigRequest(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise LabelMoveFailed(
                f"graph tier at {address}: {exc.code().name}: {exc.details()}"
            ) from exc
    if response.status.error_code != 0:
        raise LabelMoveFailed(
            f"graph tier refused the config (code {response.status.error_code}): "
            f"{response.status.error_message}"
        )


def move_labels(
    config_path: Path,
    address: str,
    model: str,
    labels: dict[str, int],
    timeout_s: float = 10.0,
    served: Callable[[Any], Any] | None = None,
) -> None:
    """Point ``labels`` of ``model`` at their versions in the file and the running server.

    ``served`` maps the edited file's config to what the server should get: with
    pinning on, the effective config, so the reload keeps every version in use.
    """
    from export.errors import ExportError
    from export.model_config import ModelEntryChange, apply_change, read_config, write_config

    try:
        old = read_config(config_path)
    except ExportError as exc:
        raise LabelMoveFailed(exc.message) from exc
    if not any(entry.name == model for entry in old.model_config_list.config):
        raise LabelMoveFailed(f"{config_path}: no entry for model {model!r}")
    new = type(old)()
    new.CopyFrom(old)
    apply_change(new, ModelEntryChange(name=model, labels=labels), "")
    try:
        write_config(config_path, new)
    except ExportError as exc:
        raise LabelMoveFailed(exc.message) from exc
    try:
        reload_config(address, served(new) if served is not None else new, timeout_s)
    except LabelMoveFailed:
        write_config(config_path, old)
        raise
    log.info("model %s: labels %s moved in %s and on the graph tier", model, labels, config_path)
