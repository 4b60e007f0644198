"""Feature functions: raw business record -> derived features.

A model version's manifest (``assets.extra/tierkit.json``) names its feature
function by import path (``"logic_service.features.ctr:derive"``); the version's
fitted transformer consumes what the function returns. Training code imports the
same function, so training and serving derive features identically.
"""
