"""TensorFlow, through its C API: one SavedModel version loaded into a session and run.

Called ``runtime`` rather than ``tensorflow`` so that ``import tensorflow`` never
reads as this package. ``servable.Servable`` loads with TF's C++ SavedModel loader
and runs signatures by tensor name without holding the GIL; the other modules are
its parts (ctypes bindings, numpy <-> TF_Tensor, session and run options, TF's
errors as TF Serving's answers, reading the MetaGraphDef) and the evidence that
decides where a run executes. Imports ``cpu`` and ``errors`` only.
"""
