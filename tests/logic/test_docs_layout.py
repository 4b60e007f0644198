"""logic_service's layout table (its ``__init__`` docstring) names every module, and only those."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import logic_service

PACKAGE = Path(logic_service.__file__).resolve().parent


def _holds_code(init: Path) -> bool:
    """An ``__init__.py`` is a module of its own once it defines more than its docstring."""
    body = ast.parse(init.read_text()).body
    return any(
        not isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    )


def test_the_layout_table_lists_every_module():
    modules = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or (p.parent != PACKAGE and _holds_code(p))
    }
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", logic_service.__doc__ or "", flags=re.M))
    assert listed == modules, {"missing": modules - listed, "gone": listed - modules}
