"""Training sets from the prediction log: what was served, what the model saw, its label.

| module | what it holds |
| --- | --- |
| `features.py` | the features a logged row's version computed, recomputed with its own pipeline |
| `export.py` | rows of a time range as Parquet, streamed in chunks, published by a rename |
"""
