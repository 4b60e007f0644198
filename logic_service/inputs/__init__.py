"""A raw record on its way to the graph's input tensor: schema, features, tensors.

A version's ``input_schema`` compiled to validators, its feature function and
fitted transformer (hash-checked, trusted types only, a numpy fast path), and
for versions without features, records stacked as tensors. Loaded per version
by ``versions``; ``features/`` holds the feature functions themselves.
"""
