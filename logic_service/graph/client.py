"""How the logic tier talks to the graph tier, whichever protocol carries it.

One interface, two implementations (``grpc_client``, ``rest_client``) and a
batching wrapper (``batching``), chosen by ``graph.protocol`` in ``factory``,
which sits above them all. Both speak TF Serving's public API, so the graph
tier may be TensorFlow Serving or ``graph_service``. Failures come back as the
``GraphError`` subclasses below; the HTTP layer maps them (503/504/502) and
the predict path retries once on ``VersionNotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from logic_service.manifest import SignatureSpec


class GraphError(Exception):
    """The graph tier could not answer usefully."""


class GraphUnavailable(GraphError):
    """Connection refused, reset or UNAVAILABLE: worth retrying later (503)."""


class GraphTimeout(GraphError):
    """The call outlived its deadline (504)."""


class GraphBadAnswer(GraphError):
    """An answer we cannot use: malformed, or an unexpected error status (502)."""


class VersionNotFound(GraphError):
    """The model or version is not (or no longer) served: refresh the status, retry once."""


class GraphRejected(GraphError):
    """INVALID_ARGUMENT: the graph tier refused the tensors we sent."""


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving's ModelVersionStatus.State)
    error: str = ""


class GraphClient(Protocol):
    async def predict(
        self,
        model: str,
        version: int,
        signature_name: str,
        inputs: dict[str, np.ndarray],
        output_names: list[str],
        timeout_s: float,
    ) -> dict[str, np.ndarray]:
        """Run the signature on an explicit version; outputs by name, batch dimension first."""
        ...

    async def model_status(self, model: str, timeout_s: float) -> list[VersionStatus]:
        """Every version the graph tier knows of, with its state."""
        ...

    async def resolve_label(self, model: str, label: str, timeout_s: float) -> int | None:
        """The version a label points to, or None when the label is not assigned.

        Through model metadata, not model status: TF Serving's GetModelStatus
        ignores ``version_label`` (get_model_status_impl.cc only honours a
        version), while GetModelMetadata resolves the spec like a Predict does
        and names the version in its ``model_spec``.
        """
        ...

    async def signature(
        self, model: str, version: int, signature_name: str, timeout_s: float
    ) -> SignatureSpec:
        """The signature's inputs and outputs, from the graph tier's model metadata."""
        ...

    async def close(self) -> None: ...
