"""The systems tierkit is measured against in ``python -m bench stack``.

Each module is one recipe as teams write it today, kept as plain as the
tutorials they come from (no tierkit code on their request path except the
demo's own ``derive`` feature function, which every system shares so all of
them compute the same features and the same score):

- ``flask_one_tier``: Flask under gunicorn, transformer and Keras model loaded
  in every worker, pandas + transformer + ``model.predict`` per request;
- ``flask_two_tier``: the same Flask app calling the graph tier's TF Serving
  REST API with ``requests``;
- ``kserve_transformer``: a ``kserve.Model`` whose ``preprocess`` runs the
  features, in front of the graph tier as its v1 (TF Serving) predictor;
- ``ceiling``: FastAPI on uvicorn (the logic tier's server stack) that parses
  the request and answers a constant: nothing in Python can answer faster.
"""
