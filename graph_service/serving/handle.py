"""A loaded version lent to one request (TF Serving's ServableHandle).

The manager counts the handles of each version; a version that is unloading
leaves the serving set at once, but its session is closed only after its last
handle is released, so a request finishes on the version it started on.
"""

from __future__ import annotations

from collections.abc import Callable

from graph_service.runtime.servable import Servable
from graph_service.serving.version_state import VersionEntry


class ServableHandle:
    """A loaded version lent to one request; release it (or use ``with``) when done."""

    __slots__ = ("_entry", "_release", "servable")

    def __init__(self, release: Callable[[VersionEntry], None], entry: VersionEntry) -> None:
        self._release = release  # the manager's: drops the count, wakes a waiting unload
        self._entry = entry
        assert entry.servable is not None
        self.servable = entry.servable

    def release(self) -> None:
        if self._entry is not None:
            self._release(self._entry)
            self._entry = None  # type: ignore[assignment]

    def __enter__(self) -> Servable:
        return self.servable

    def __exit__(self, *exc: object) -> None:
        self.release()
