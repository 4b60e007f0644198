"""The HTTP edge: every route, on one ``APIRouter`` per module, included by ``app.py``.

Routers read the body, call the part that decides (the predict service, the
rollout policy, pinning, the database) through ``services_of(request.app)`` and
write the answer; the request logic lives below. Here too: the one JSON body
module, the one error body, the middleware, API keys and CORS. Nothing below
imports this.
"""
