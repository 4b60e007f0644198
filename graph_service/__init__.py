"""graph_service: the local graph tier, a drop-in for ``tensorflow_model_server``.

Run it as ``python -m graph_service`` (or the ``tierkit-graph`` console script).
Its layers, top to bottom (each imports only those below it; ``lint-imports``):

    __main__, command   entry points
    server              startup wiring: configs -> ServerCore -> gRPC + REST
    api/, flags         protocol edges (gRPC, REST, JSON codecs); TF Serving's flags
    handlers/           what a request does, shared by both protocols
    serving/, batching/, monitoring
                        which versions serve (source, policies, manager, loader);
                        server-side batching; Prometheus metrics
    inference/          Predict / Classify / Regress / MultiInference on one version
    runtime/            TensorFlow through its C API: one SavedModel in a session
    cpu/                threads, cores and the GIL while versions load
    errors              ServingError

docs/graph_service.md has the table of every module.
"""
