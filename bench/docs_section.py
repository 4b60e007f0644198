"""Benchmark reports written into a markdown file between marker comments.

Each benchmark owns one marked block of docs/benchmarks.md and rewrites only
that block, so the figures in the docs are always a run's own output, the
prose around them stays hand-written, and two benchmarks never overwrite each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DocsSection:
    name: str  # e.g. "bench-stack": the markers are <!-- name:begin --> / <!-- name:end -->
    heading: str  # added with the block when the file has no such markers yet

    @property
    def begin(self) -> str:
        return f"<!-- {self.name}:begin -->"

    @property
    def end(self) -> str:
        return f"<!-- {self.name}:end -->"

    def place(self, document: str, markdown: str) -> str:
        """``document`` with ``markdown`` between the markers (the section added when missing)."""
        block = f"{self.begin}\n{markdown.strip()}\n{self.end}"
        begin, end = self.begin, self.end
        if begin in document and end in document and document.index(begin) < document.index(end):
            head, rest = document.split(begin, 1)
            _, tail = rest.split(end, 1)
            return head + block + tail
        separator = (
            ""
            if not document or document.endswith("\n\n")
            else ("\n" if document.endswith("\n") else "\n\n")
        )
        return f"{document}{separator}{self.heading}\n\n{block}\n"

    def write(self, path: Path, markdown: str) -> None:
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.place(text, markdown))
