"""Calling the graph tier (TF Serving or graph_service), over gRPC or REST.

``client`` is the interface and its errors, which the rest of the tier sees;
``grpc_client`` and ``rest_client`` implement it, ``batching`` merges
concurrent calls, ``factory`` (on top, importing them all) builds what the
settings ask for. Imports ``codecs``, ``manifest`` and ``settings`` only.
"""
