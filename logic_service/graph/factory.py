"""Building the graph client the settings ask for: the protocol's, maybe behind batching.

Apart from ``client`` (the interface and its errors) because it imports every
implementation, and each implementation imports the interface: here, above
them all, nothing imports back.
"""

from __future__ import annotations

from collections.abc import Callable

from logic_service.graph.client import GraphClient
from logic_service.settings import LogicSettings


def create_graph_client(
    settings: LogicSettings, on_batch: Callable[[str, int], None] | None = None
) -> GraphClient:
    """The protocol's client, merging concurrent predicts unless ``graph.batching`` is off."""
    client: GraphClient
    if settings.graph.protocol == "rest":
        from logic_service.graph.rest_client import RestGraphClient

        client = RestGraphClient(settings.graph.rest_url)
    else:
        from logic_service.graph.grpc_client import GrpcGraphClient

        client = GrpcGraphClient(settings.graph.grpc_address)
    if not settings.graph.batching.enabled:
        return client
    from logic_service.graph.batching import BatchingGraphClient

    return BatchingGraphClient(client, settings.graph.batching, on_batch)
