"""The Flask recipe, two tiers: features in Flask, the model behind TF Serving's REST API.

Run as ``gunicorn -w 2 bench.peers.flask_two_tier:app`` with
``BENCH_TRANSFORMER`` (the fitted transformer) and ``BENCH_PREDICT_URL``
(``http://host:port/v1/models/ctr:predict`` of the graph tier) in the
environment. One ``requests.Session`` per worker keeps the connection to the
graph tier alive -- the better half of what teams write (many post without a
session and pay a TCP connect per request).
"""

from __future__ import annotations

import os

import requests
from flask import Flask, jsonify, request

from bench.peers.recipe_features import featurize, load_transformer

TRANSFORMER = load_transformer(os.environ["BENCH_TRANSFORMER"])
PREDICT_URL = os.environ["BENCH_PREDICT_URL"]
SESSION = requests.Session()

app = Flask(__name__)


@app.post("/predict")
def predict():
    record = request.get_json(force=True)
    features = featurize(TRANSFORMER, record)
    answer = SESSION.post(PREDICT_URL, json={"instances": features.tolist()}, timeout=10)
    answer.raise_for_status()
    return jsonify({"score": float(answer.json()["predictions"][0][0])})


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
