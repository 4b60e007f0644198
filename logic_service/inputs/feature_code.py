"""Feature code that travels with its version, run only when it is the code export checked.

A version exported with ``--feature-module`` carries its feature function as a
file (``assets.extra/features.py``) and the file's sha256 in the manifest.
Loading it is running code, so three things must hold first:

- the version folder lies, symlinks resolved, inside a trusted repository
  (``features.trusted_repositories``, or the model repository itself with
  ``features.trust_model_repository``, which ``./scripts/up`` turns on; none by
  default): a manifest is trusted because of where it is, and who may write
  there is who may run code in the logic tier (docs/security.md);
- the bytes read match the manifest's sha256: a file changed after publishing
  (by hand, by a bad sync, by someone who cannot rewrite the manifest) is
  refused, naming both digests;
- the bytes that matched are the bytes run (read once, hashed, compiled), under
  a module name of this model, version and content, never through ``sys.path``:
  two versions of one model never share a module, and editing a file of the
  logic tier's installation changes no version.
"""

from __future__ import annotations

import hashlib
import re
import sys
import types
from collections.abc import Sequence
from pathlib import Path

from logic_service.manifest import CodeSpec

MODULE_PREFIX = "tierkit_feature_code"


class UntrustedArtifact(ValueError):
    """Code or a pickle outside the trusted repositories, or bytes the manifest does not pin."""


def module_name(model: str, version: int, sha256: str) -> str:
    safe = re.sub(r"\W", "_", model)
    return f"{MODULE_PREFIX}_{safe}_{version}_{sha256[:12].lower()}"


def check_trusted(version_dir: Path, trusted: Sequence[Path], what: str) -> None:
    """Refuse ``what`` unless ``version_dir`` (symlinks resolved) is under a trusted root."""
    real = version_dir.resolve()
    for root in trusted:
        if real.is_relative_to(root.resolve()):
            return
    roots = ", ".join(str(r) for r in trusted) or "none"
    raise UntrustedArtifact(
        f"{version_dir}: {what} refused: {real} is not inside a trusted repository "
        f"(trusted: {roots}; set features.trusted_repositories or "
        "features.trust_model_repository, docs/security.md)"
    )


def load_code(directory: Path, code: CodeSpec, model: str, version: int) -> types.ModuleType:
    """The copied module of ``model``/``version``, after its bytes matched the manifest."""
    path = directory / code.file
    if path.parent != directory or not path.is_file():
        raise UntrustedArtifact(f"{path}: feature code missing")
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if digest != code.sha256.lower():
        raise UntrustedArtifact(
            f"{path}: sha256 {digest} does not match the manifest's {code.sha256}; "
            "feature code changed after export is never run"
        )
    name = module_name(model, version, digest)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
