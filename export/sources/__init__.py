"""Where a model comes from: a Keras file, a TF1 checkpoint or an existing SavedModel.

Each source loads the original, writes it out as a SavedModel and can still run
the original for the parity check (``model_source.ModelSource``). Imports
``checks`` (to read and run SavedModels) and the package's shared modules.
"""
