"""docs/graph_service.md's layout table names every module of the package, and only those."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_layout_table_lists_every_module():
    package = ROOT / "graph_service"
    modules = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if p.name != "__init__.py" or p.parent == package
    } - {"__init__.py"}
    text = (ROOT / "docs" / "graph_service.md").read_text()
    table = text[text.index("## Layout") : text.index("## Loading and running a version")]
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", table, flags=re.M))
    assert listed == modules, {"missing": modules - listed, "gone": listed - modules}
