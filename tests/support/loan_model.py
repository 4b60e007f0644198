"""A second model beside the demo: loan default from six raw fields (issue 29).

What a user brings: a feature module (``derive``, ``INPUT_SCHEMA``,
``EXAMPLE_REQUEST``), a scikit-learn transformer saved with skops and a Keras
``.h5``, all made for real here (small, seeded; about a second of training).
docs/your-model.md walks through the same files; tests/e2e/test_your_model.py
runs the guide's own copy.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

FEATURE_MODULE = '''\
"""Loan default: one raw application -> derived features."""

import math

INPUT_SCHEMA = {
    "type": "object",
    "required": ["age", "income", "loan_amount", "term_months", "employment", "home"],
    "properties": {
        "age": {"type": "integer", "minimum": 18, "maximum": 120},
        "income": {"type": "number", "minimum": 0, "maximum": 1e9},
        "loan_amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
        "term_months": {"type": "integer", "enum": [12, 24, 36, 48, 60]},
        "employment": {"type": "string", "enum": ["salaried", "self_employed", "unemployed"]},
        "home": {"type": "string", "enum": ["rent", "own", "mortgage"]},
    },
    "additionalProperties": False,
}

EXAMPLE_REQUEST = {
    "age": 35, "income": 52000, "loan_amount": 15000,
    "term_months": 36, "employment": "salaried", "home": "rent",
}


def derive(record):
    income = float(record["income"])
    amount = float(record["loan_amount"])
    return {
        "age": float(record["age"]),
        "log_income": math.log1p(income),
        "debt_to_income": amount / max(income, 1.0),
        "monthly_payment": amount / record["term_months"],
        "employment": record["employment"],
        "home": record["home"],
    }
'''

NUMBERS = ["age", "log_income", "debt_to_income", "monthly_payment"]
CATEGORIES = ["employment", "home"]


@dataclass(frozen=True)
class LoanFiles:
    model: Path  # loan.h5
    features: Path  # loan_features.skops
    module: Path  # loan_feats.py


def write_loan_model(out: Path, rows: int = 400, seed: int = 7) -> LoanFiles:
    """Train the loan model on synthetic applications; the three files a user exports."""
    import keras
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    out.mkdir(parents=True, exist_ok=True)
    module_path = out / "loan_feats.py"
    module_path.write_text(FEATURE_MODULE)
    spec = importlib.util.spec_from_file_location("loan_feats_for_training", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(seed)
    applications = [
        {
            "age": int(rng.integers(18, 80)),
            "income": float(rng.lognormal(10.8, 0.5)),
            "loan_amount": float(rng.uniform(1000, 60000)),
            "term_months": int(rng.choice([12, 24, 36, 48, 60])),
            "employment": str(rng.choice(["salaried", "self_employed", "unemployed"])),
            "home": str(rng.choice(["rent", "own", "mortgage"])),
        }
        for _ in range(rows)
    ]
    frame = pd.DataFrame([module.derive(a) for a in applications])
    labels = (frame["debt_to_income"] > 0.5).astype("float32").to_numpy()
    transformer = ColumnTransformer(
        [
            ("numbers", StandardScaler(), NUMBERS),
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORIES),
        ]
    )
    features = transformer.fit_transform(frame).astype("float32")
    skops.io.dump(transformer, out / "loan_features.skops")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(features.shape[1],), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    output = keras.layers.Dense(1, activation="sigmoid", name="default_prob")(hidden)
    model = keras.Model(inputs, output)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(features, labels, epochs=1, batch_size=64, verbose=0)
    model.save(out / "loan.h5")
    return LoanFiles(out / "loan.h5", out / "loan_features.skops", module_path)
