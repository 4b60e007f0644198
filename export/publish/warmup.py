"""TF Serving's warmup file: ``assets.extra/tf_serving_warmup_requests``.

TF Serving (and the graph tier) replay these requests before a version becomes
AVAILABLE, so the first real request does not pay for graph tracing, memory
allocation or lazy initialisation. The format is a TFRecord file of
``PredictionLog`` protos holding ``PredictRequest``s.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from export.checks.samples import batch_size

WARMUP_FILE = "tf_serving_warmup_requests"
# One record per sample row, capped: warmup is about touching every code path
# once, not about load.
MAX_RECORDS = 16


def write_warmup(
    path: Path,
    model_name: str,
    signature_name: str,
    samples: Mapping[str, np.ndarray],
) -> int:
    """Write one single-row request per sample row (or one for the whole batch)."""
    rows = batch_size(samples)
    splittable = all(array.ndim > 0 and array.shape[0] == rows for array in samples.values())
    if splittable and rows > 0:
        batches = [
            {key: array[index : index + 1] for key, array in samples.items()}
            for index in range(min(rows, MAX_RECORDS))
        ]
    else:
        batches = [dict(samples)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for key, array in batch.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(batches)
