"""``tensorflow.serving.Input`` -> the serialized tf.Example strings a signature is fed.

Classify, Regress and MultiInference feed one string tensor of serialized
examples. With ``example_list_with_context`` TF Serving serializes each example
as ``context + example``: two concatenated serialized protos parse as one merged
message, so the example's features override the context's of the same name.
"""

from __future__ import annotations

import numpy as np
from tensorflow_serving.apis import input_pb2

from graph_service.errors import invalid_argument


def serialized_examples(inp: input_pb2.Input) -> np.ndarray:
    """A 1-D object array of serialized tf.Example bytes, one per example."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in inp.example_list.examples]
    elif kind == "example_list_with_context":
        context = inp.example_list_with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in inp.example_list_with_context.examples]
    else:
        raise invalid_argument("Input is empty.")
    if not examples:
        raise invalid_argument("Input is empty.")
    out = np.empty(len(examples), dtype=object)
    out[:] = examples
    return out
