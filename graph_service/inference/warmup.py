"""Replaying ``assets.extra/tf_serving_warmup_requests`` before a version serves.

TF Serving runs each recorded PredictionLog (predict, classify, regress,
multi_inference) against the freshly loaded session so the first real request
does not pay for lazy initialisation; a failing record fails the load. The
records are decoded on the loader thread and their session calls run where the
caller says (the server's low-priority worker), and the replay is paced: after
each record the thread sleeps as long as the record took (capped), leaving the
CPU and the GIL to the versions that are already serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from tensorflow_serving.apis import prediction_log_pb2

from graph_service.cpu.load_pacing import no_pacing
from graph_service.errors import ServingError
from graph_service.inference.example_inference import (
    classification_result,
    prepare_classify,
    prepare_multi_inference,
    prepare_regress,
    regression_result,
    run_multi_inference,
)
from graph_service.inference.prediction import finish_predict, prepare_predict
from graph_service.runtime.servable import CallIn, Servable, run_here

log = logging.getLogger("graph_service")

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
MAX_PAUSE_S = 0.05


def warmup_path(version_dir: Path) -> Path:
    return Path(version_dir) / WARMUP_FILE


def _records(path: Path, pace: Callable[[], None]) -> list[bytes]:
    import tensorflow as tf

    records: list[bytes] = []
    try:
        for raw in tf.compat.v1.io.tf_record_iterator(str(path)):
            pace()
            records.append(raw)
            if len(records) > MAX_WARMUP_RECORDS:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at "
                    f"{path}",
                )
    except tf.errors.OpError as exc:
        raise ServingError(
            grpc.StatusCode.DATA_LOSS, f"Failed to read warmup data from {path}: {exc.message}"
        ) from None
    return records


# log_type -> (its request, how to prepare it, how to finish the run's outputs)
_ONE_SIGNATURE: dict[str, tuple[Callable, Callable, Callable]] = {
    "predict_log": (lambda log: log.predict_log.request, prepare_predict, finish_predict),
    "classify_log": (
        lambda log: log.classify_log.request,
        prepare_classify,
        lambda servable, prepared, outputs: classification_result(prepared, outputs),
    ),
    "regress_log": (
        lambda log: log.regress_log.request,
        prepare_regress,
        lambda servable, prepared, outputs: regression_result(prepared, outputs),
    ),
}


def _replay(
    servable: Servable,
    log_entry: prediction_log_pb2.PredictionLog,
    call: CallIn,
    pace: Callable[[], None],
) -> None:
    kind = log_entry.WhichOneof("log_type")
    if kind in _ONE_SIGNATURE:
        request_of, prepare, finish = _ONE_SIGNATURE[kind]
        prepared = prepare(servable, request_of(log_entry))
        pace()
        outputs = servable.run(
            prepared.signature_name, prepared.inputs, prepared.output_aliases, call
        )
        pace()
        finish(servable, prepared, outputs)
    elif kind == "multi_inference_log":
        prepared, tasks = prepare_multi_inference(servable, log_entry.multi_inference_log.request)
        pace()
        run_multi_inference(servable, prepared, tasks, call)
        pace()
    else:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}"
        )


def replay_warmup(
    servable: Servable,
    iterations: int = 1,
    call: CallIn = run_here,
    pace: Callable[[], None] = no_pacing,
) -> int:
    """Run the version's warmup records; returns how many ran. Raises ServingError on failure.

    ``call`` runs each session call (the server passes its low-priority worker's);
    ``pace`` is offered a pause between records and their steps (load_pacing.py).
    """
    path = warmup_path(servable.path)
    if not path.is_file():
        return 0
    started = time.monotonic()
    records = _records(path, pace)
    for raw in records:
        pace()
        entry = prediction_log_pb2.PredictionLog()
        try:
            entry.ParseFromString(raw)
        except Exception:
            raise ServingError(
                grpc.StatusCode.DATA_LOSS, f"Failed to parse PredictionLog in warmup file {path}"
            ) from None
        for _ in range(max(iterations, 1)):
            pace()
            t0 = time.monotonic()
            try:
                _replay(servable, entry, call, pace)
            except ServingError as exc:
                raise ServingError(exc.code, f"Warmup request failed: {exc.message}") from None
            time.sleep(min(time.monotonic() - t0, MAX_PAUSE_S))
    log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        path,
        len(records),
        int((time.monotonic() - started) * 1e6),
    )
    return len(records)
