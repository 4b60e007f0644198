"""Feature code that travels with its version (``--feature-module FILE.py``).

The feature function (raw record -> derived features) is code, and code that
lives in a folder of the logic tier's installation changes under every version
at once when someone edits it: the train/serve skew tierkit exists to prevent.
So the module file is copied into the version (``assets.extra/features.py``),
its sha256 goes into the manifest, and the logic tier runs exactly those bytes.

The export loads the module the way the logic tier will: from the bytes it
copied, under a module name of its own (never ``sys.path``, never a name
another module could already hold), so what the parity check ran is what
serving runs.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from export.errors import ExportError

CODE_FILE = "features.py"
DEFAULT_FUNCTION = "derive"


def module_name_for(sha256: str) -> str:
    """A name no other module holds: one per content, so two versions never share one."""
    return f"tierkit_feature_code_{sha256[:16]}"


def exec_module(source: bytes, name: str, origin: Path) -> types.ModuleType:
    """Run ``source`` as module ``name`` (registered in sys.modules: dataclasses need it)."""
    module = types.ModuleType(name)
    module.__file__ = str(origin)
    sys.modules[name] = module
    try:
        exec(compile(source, str(origin), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_feature_module(path: Path) -> tuple[types.ModuleType, str]:
    """The module in ``path`` and its sha256; an ExportError naming the file on any failure."""
    if not path.is_file():
        raise ExportError(f"--feature-module {path}: no such file")
    if path.suffix != ".py":
        raise ExportError(f"--feature-module {path}: expected a Python file (.py)")
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    try:
        module = exec_module(source, module_name_for(digest), path)
    except Exception as exc:
        raise ExportError(
            f"--feature-module {path}: importing it failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module, digest


def function_of(module: types.ModuleType, attr: str, where: str) -> Callable[..., Any]:
    function = getattr(module, attr, None)
    if not callable(function):
        raise ExportError(f"{where}: has no callable {attr!r} (raw record -> derived features)")
    return function


def example_of(module: types.ModuleType, where: str) -> dict[str, Any] | None:
    """The module's ``EXAMPLE_REQUEST`` (one raw record), if it has one."""
    example = getattr(module, "EXAMPLE_REQUEST", None)
    if example is None:
        return None
    if not isinstance(example, dict):
        raise ExportError(f"{where}: EXAMPLE_REQUEST must be a dict (one raw record)")
    return example
