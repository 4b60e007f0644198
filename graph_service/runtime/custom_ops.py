"""Op libraries TF Serving links in: TF Text's ops, when ``tensorflow-text`` is installed.

``tensorflow_model_server`` is built with TF Text's kernels (its test_tf_text
serves a SavedModel full of them), so a model that tokenizes inside its graph
loads there. Here the graph tier runs TensorFlow's C API in this process, where
an op exists once its library is loaded: each kernel library under
``tensorflow_text/python/`` (``ops/``, ``metrics/``) is loaded with
``tf.load_op_library`` (its registrations are process-wide, the C API's sessions
see them) before the first version loads. The package is found
without importing it (its Python side pulls in Keras); with it absent, nothing
happens and such a model fails to load with TensorFlow's "Op type not
registered" message, as on a TF Serving build without it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger("graph_service")

OP_PACKAGES = ("tensorflow_text",)


def op_libraries(package: str) -> list[Path]:
    """The kernel libraries an installed op package ships ([] when not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    # Kernel libraries live under python/ (ops/, metrics/); core/pybinds holds Python
    # extension modules, which are no op libraries.
    return sorted((root / "python").rglob("*.so"))


def load_custom_ops() -> list[str]:
    """Load every installed op package's kernels; the packages loaded, by name."""
    loaded: list[str] = []
    for package in OP_PACKAGES:
        libraries = op_libraries(package)
        if not libraries:
            continue
        import tensorflow as tf

        failed = []
        for library in libraries:
            try:
                tf.load_op_library(str(library))
            except Exception as exc:  # a library built for another TF: say so, serve on
                failed.append(f"{library.name}: {exc}")
        if failed:
            log.warning("%s: %d op librar(ies) did not load: %s", package, len(failed), failed)
        log.info("loaded %d op libraries of %s", len(libraries) - len(failed), package)
        loaded.append(package)
    return loaded
