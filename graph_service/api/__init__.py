"""The protocol edges: TF Serving's gRPC services and REST API, and the REST API's JSON codecs.

They convert and delegate: a request becomes TF Serving's request proto and goes
to ``handlers.server_core.ServerCore``; its answer or ``ServingError`` goes back
in the protocol's own form. No request logic lives here, so gRPC and REST cannot
drift. May import ``handlers`` and ``errors``; nothing below imports this.
"""
