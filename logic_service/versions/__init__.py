"""What each model can serve right now, and what serving one version needs.

The registry reads the graph tier's version states and loads each version's
artifacts (manifest, schema, features) in the background; it publishes a
``RoutableModel`` snapshot that routing chooses from. Imports ``inputs``,
``graph`` and below.
"""
