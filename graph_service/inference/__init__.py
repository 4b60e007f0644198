"""What Predict, Classify, Regress and MultiInference mean on one loaded version.

Request protos are checked against a signature and turned into feeds; outputs
become response protos, with TF Serving's messages (its ``predict_util``,
classifier, regressor and multi_inference). Warmup replays logged requests
through the same code. Imports ``runtime`` and below.
"""
