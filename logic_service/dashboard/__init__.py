"""The operators' dashboard: what its page shows, computed from the shared database.

``feed`` builds the JSON the page polls (and the rollout gauges of
``/metrics``), ``api_panel`` its "API versions" panel, ``graph_metrics`` the graph tier's
own counters; ``static/`` holds the
page, its script and its style, served as they are (no CDN: the page works on
a machine with no internet). The routes are in ``api/dashboard.py``.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
