"""What a request does, shared by both protocols (MLServer's ``handlers/``).

``ServerCore`` resolves a ModelSpec to a loaded version, holds its handle for the
request, runs the signature (on the run pool, the event loop or through a batch
queue), records the call's metrics and answers with TF Serving's codes. Imports
``serving``, ``batching``, ``inference`` and below; never ``api``.
"""
