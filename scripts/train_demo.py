#!/usr/bin/env python
"""Train the demo click-through-rate model on synthetic data.

The data mimics the demo's raw request (``logic_service.features.ctr.EXAMPLE_REQUEST``):
plausible distributions for every field and a click label that depends on age,
account age, app, channel, country, device brand and screen size, so the model
has something real to learn. Features come from the same ``derive`` function
the logic tier calls at serving time, at a fixed reference date, and the
transformer is the one ``build_transformer()`` defines.

Writes into --out (default .demo/):
  model.h5              Keras model, legacy HDF5 (input "features", output "score")
  ctr_features.skops    the fitted transformer (skops.io.dump)
  ctr_sample.json       a TF Serving columnar request of transformed rows (parity/warmup)
  ctr_calibration.json  256 training rows, same layout (int8 ranges: export --calibration)
  ctr_eval.json         the held-out rows with their labels (export --eval: a quantized
                        version's metric delta)

Usage: python scripts/train_demo.py [--out DIR] [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
CALIBRATION_ROWS = 256  # rows that set int8 ranges: enough to see each feature's spread
SAMPLE_ROWS = 8

# Categorical vocabularies with popularity weights and an effect on the click logit.
APPS = {20000: (0.4, 0.6), 20001: (0.25, 0.0), 20002: (0.2, -0.3), 20010: (0.15, -0.8)}
CHANNELS = {1: (0.35, 0.4), 2: (0.25, 0.0), 3: (0.2, -0.2), 4: (0.12, -0.5), 5: (0.08, 0.2)}
COUNTRIES = {182: (0.3, 0.3), 45: (0.2, -0.2), 99: (0.15, 0.0), 12: (0.15, 0.5), 230: (0.2, -0.4)}
LANGUAGES = {"20": 0.35, "1": 0.3, "7": 0.15, "13": 0.12, "5": 0.08}
EVENT_TYPES = {6: (0.45, 0.3), 1: (0.2, -0.3), 2: (0.15, 0.0), 4: (0.12, -0.2), 8: (0.08, 0.4)}
STONE_VERSIONS = {"other": 0.5, "v1": 0.2, "v2": 0.2, "v3": 0.1}
PLATFORMS = {1: 0.3, 2: 0.6, 3: 0.1}
SCREENS = {"720*1440": 0.3, "1080*1920": 0.2, "1080*2340": 0.25, "750*1334": 0.1, "480*854": 0.15}
BRANDS = {
    "TECNO": (0.3, 0.5, ["BB4k", "KC8", "LD7"]),
    "INFINIX": (0.2, 0.3, ["X657", "X688B"]),
    "ITEL": (0.15, 0.1, ["A56", "L6005"]),
    "SAMSUNG": (0.15, -0.4, ["SM-A105F", "SM-J260F"]),
    "XIAOMI": (0.1, -0.2, ["REDMI-9A", "M2006C3LG"]),
    "HUAWEI": (0.1, -0.3, ["Y6P", "MRD-LX1"]),
}


def _log(message: str, started: float) -> None:
    print(f"[train_demo {time.monotonic() - started:5.1f}s] {message}", flush=True)


def _choice(rng: np.random.Generator, table: dict[Any, Any], rows: int) -> np.ndarray:
    keys = list(table)
    weights = np.array([v[0] if isinstance(v, tuple) else v for v in table.values()], float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=rows, p=weights / weights.sum())]


def _effect(table: dict[Any, tuple[Any, ...]], values: np.ndarray) -> np.ndarray:
    return np.array([table[value][1] for value in values], dtype=float)


def _timestamp(moment: datetime) -> str:
    # The request's own format: 1995-04-29T00:00:00.000+0000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def synthesize(rows: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Raw records shaped like EXAMPLE_REQUEST and their click labels."""
    rng = np.random.default_rng(seed)
    age_years = np.clip(rng.gamma(6.0, 4.5, size=rows) + 14, 14, 75)
    account_days = rng.exponential(400.0, size=rows).clip(0, 3000)
    seconds_of_day = rng.integers(0, 86_400, size=rows)
    apps, channels = _choice(rng, APPS, rows), _choice(rng, CHANNELS, rows)
    countries, types = _choice(rng, COUNTRIES, rows), _choice(rng, EVENT_TYPES, rows)
    languages, stones = _choice(rng, LANGUAGES, rows), _choice(rng, STONE_VERSIONS, rows)
    platforms, screens = _choice(rng, PLATFORMS, rows), _choice(rng, SCREENS, rows)
    brands = _choice(rng, BRANDS, rows)
    records = []
    for i in range(rows):
        birthday = (REFERENCE_TIME - timedelta(days=float(age_years[i]) * 365.2425)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        created = (
            REFERENCE_TIME
            - timedelta(days=float(account_days[i]) + 1)
            + timedelta(seconds=int(seconds_of_day[i]))
        )
        model = BRANDS[brands[i]][2][int(rng.integers(len(BRANDS[brands[i]][2])))]
        records.append(
            {
                "userId": int(rng.integers(10_000_000, 999_999_999)),
                "birthday": _timestamp(birthday),
                "appId": int(apps[i]),
                "channel": int(channels[i]),
                "countryId": int(countries[i]),
                "createTime": _timestamp(created),
                "languageId": str(languages[i]),
                "type": int(types[i]),
                "stoneVersion": str(stones[i]),
                "platformType": int(platforms[i]),
                "screenSize": str(screens[i]),
                "deviceName": f"{brands[i]}-{model}",
            }
        )
    screen_area = np.array([float(np.prod([int(p) for p in s.split("*")])) for s in screens])
    logit = (
        -1.2
        - 0.06 * (age_years - 30)
        - 0.35 * np.log1p(account_days / 30)
        + 0.5 * (screen_area / 1e6 - 1.5)
        + _effect(APPS, apps)
        + _effect(CHANNELS, channels)
        + _effect(COUNTRIES, countries)
        + _effect(EVENT_TYPES, types)
        + np.array([BRANDS[b][1] for b in brands])
    )
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return records, labels


def train(out: Path, rows: int, seed: int) -> dict[str, Path]:
    started = time.monotonic()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import pandas as pd
    import skops.io

    from logic_service.features.ctr import build_transformer, derive

    records, labels = synthesize(rows, seed)
    _log(f"synthesized {rows} records (click rate {labels.mean():.3f})", started)
    frame = pd.DataFrame([derive(record, now=REFERENCE_TIME) for record in records])
    transformer = build_transformer()
    features = np.asarray(transformer.fit_transform(frame), dtype=np.float32)
    _log(f"derived and transformed features: {features.shape[1]} columns", started)

    import absl.logging
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)  # not the "HDF5 is legacy" notice: we mean it
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(features.shape[1],), name="features", dtype="float32")
    hidden = keras.layers.Dense(32, activation="relu", name="hidden_1")(inputs)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden_2")(hidden)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    model = keras.Model(inputs, score, name="ctr")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    split = max(1, int(rows * 0.8))
    _log("training the Keras model", started)
    history = model.fit(
        features[:split],
        labels[:split],
        validation_data=(features[split:], labels[split:]) if split < rows else None,
        epochs=5,
        batch_size=128,
        verbose=0,
    )
    last = {key: round(float(values[-1]), 4) for key, values in history.history.items()}
    _log(f"trained 5 epochs: {last}", started)

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "model": out / "model.h5",
        "features": out / "ctr_features.skops",
        "sample": out / "ctr_sample.json",
        "calibration": out / "ctr_calibration.json",
        "eval": out / "ctr_eval.json",
    }
    skops.io.dump(transformer, paths["features"])
    rows_for_sample = features[:SAMPLE_ROWS]
    sample = {"inputs": {"features": [[float(v) for v in row] for row in rows_for_sample]}}
    paths["sample"].write_text(json.dumps(sample) + "\n")
    calibration = {"inputs": {"features": _rows(features[: min(split, CALIBRATION_ROWS)])}}
    paths["calibration"].write_text(json.dumps(calibration) + "\n")
    held_out = (features[split:], labels[split:]) if split < rows else (features, labels)
    evaluation = {
        "inputs": {"features": _rows(held_out[0])},
        "labels": [int(v) for v in held_out[1]],
    }
    paths["eval"].write_text(json.dumps(evaluation) + "\n")
    # The model last: its modification time is the version the export defaults to.
    model.save(paths["model"])
    _log(f"saved {', '.join(str(p) for p in paths.values())}", started)
    return paths


def _rows(matrix: np.ndarray) -> list[list[float]]:
    """Rows as JSON numbers; 7 significant digits keep float32 values exact enough."""
    return [[float(f"{v:.7g}") for v in row] for row in matrix]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train the demo CTR model on synthetic data.",
        epilog="example: python scripts/train_demo.py --out .demo --rows 20000",
    )
    parser.add_argument("--out", type=Path, default=Path(".demo"), help="output directory")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic records to train on")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args(argv)
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    train(args.out, args.rows, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
