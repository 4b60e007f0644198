"""The per-request feature step of the recipes: derive, a one-row DataFrame, the transformer.

This is what serving code built around a fitted scikit-learn transformer
usually does, and why it is slow: a pandas DataFrame per request (the
transformer was fitted on one, with column names) and the ColumnTransformer's
general path. tierkit's logic tier skips both; the peers keep them, because
that is the recipe being measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logic_service.features.ctr import derive


def load_transformer(path: str | Path) -> Any:
    """Load a fitted transformer saved with skops (``.skops``) or joblib/pickle.

    skops is told to trust exactly the types the file names, as its docs show
    for a file one produced oneself.
    """
    path = Path(path)
    if path.suffix == ".skops":
        import skops.io

        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    import joblib

    return joblib.load(path)


def featurize(transformer: Any, record: Mapping[str, Any]) -> np.ndarray:
    """One raw record -> one transformed row, shape (1, n_features), float32."""
    frame = pd.DataFrame([derive(record)])
    return np.asarray(transformer.transform(frame), dtype=np.float32)
