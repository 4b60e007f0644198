"""The Flask recipe, one tier: transformer and Keras model in every gunicorn worker.

Run as ``gunicorn -w 2 bench.peers.flask_one_tier:app`` with
``BENCH_MODEL_H5`` (the Keras ``.h5``) and ``BENCH_TRANSFORMER`` (the fitted
transformer) in the environment. Both are loaded at import, in each worker,
the way the tutorials do it; every request builds a DataFrame, transforms it
and calls ``model.predict`` -- the tutorials' call, whose per-call overhead
(data adapter, callbacks, a step function per call) dwarfs one row's compute.
``BENCH_KERAS_CALL=predict_on_batch`` measures the cheaper call instead, for
a stronger baseline.
"""

from __future__ import annotations

import os

import tensorflow as tf
from flask import Flask, jsonify, request

from bench.peers.recipe_features import featurize, load_transformer

MODEL = tf.keras.models.load_model(os.environ["BENCH_MODEL_H5"], compile=False)
TRANSFORMER = load_transformer(os.environ["BENCH_TRANSFORMER"])
CALL = os.environ.get("BENCH_KERAS_CALL", "predict")
if CALL not in ("predict", "predict_on_batch"):
    raise SystemExit(f"BENCH_KERAS_CALL={CALL!r}: predict or predict_on_batch")

app = Flask(__name__)


@app.post("/predict")
def predict():
    record = request.get_json(force=True)
    features = featurize(TRANSFORMER, record)
    if CALL == "predict":
        scores = MODEL.predict(features, verbose=0)
    else:
        scores = MODEL.predict_on_batch(features)
    score = float(scores[0][0])
    return jsonify({"score": score})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
