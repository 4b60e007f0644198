"""Merging task inputs into one batch and splitting the outputs back, as TF Serving does.

Mirrors tensorflow_serving/batching/batching_session.cc (MergeInputTensors,
SplitOutputTensors) and batching_util.cc (padding of variable-length inputs):

- inputs are concatenated along dim 0 in task order;
- ``allowed_batch_sizes`` padding appends copies of the first row of the last
  task, and those rows are dropped from the outputs;
- ``pad_variable_length_inputs`` pads every other dim up to the largest in the
  batch, with the first element of that task's own tensor (TF Serving's
  ``pad_value(input.flat<T>()(0))``);
- an output whose dim 0 is the batch is sliced per task; any other output (a
  scalar, a vocabulary, ...) goes whole to every task. TF Serving refuses such
  outputs with FAILED_PRECONDITION; answering them keeps such models servable.

Kept apart from the scheduler so the scheduling logic stays about time and
queues, and this stays about arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graph_service.errors import invalid_argument

Tensors = Mapping[str, np.ndarray]


def task_size(inputs: Tensors) -> int:
    """Dim 0 shared by every input, with TF Serving's ComputeTensorBatchSize messages."""
    size = -1
    for array in inputs.values():
        if array.ndim == 0:
            raise invalid_argument("Batching Run() input tensors must have at least one dimension")
        if size < 0:
            size = array.shape[0]
        elif array.shape[0] != size:
            raise invalid_argument(
                "Batching Run() input tensors must have equal 0th-dimension size"
            )
    if size < 0:
        raise invalid_argument("Batching Run() must have at least one input tensor")
    return size


def merge_signature(inputs: Tensors, pad_variable_length: bool) -> tuple:
    """What tasks must share to be concatenated into one batch.

    Without padding that is dtype and every dim but the first; with padding, dtype
    and rank. Tasks that differ go to separate batches instead of failing each
    other (TF Serving fails the whole batch with FAILED_PRECONDITION).
    """
    if pad_variable_length:
        return tuple((name, a.dtype.str, a.ndim) for name, a in inputs.items())
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items())


def round_to_allowed(size: int, allowed: Sequence[int]) -> int:
    """RoundToLowestAllowedBatchSize: the smallest allowed size that fits ``size``."""
    for candidate in allowed:
        if candidate >= size:
            return candidate
    return size


def merge_inputs(
    tasks: Sequence[Tensors], padded_size: int, real_size: int, pad_variable_length: bool
) -> dict[str, np.ndarray]:
    """One dict of batched inputs for ``tasks`` (padded rows included)."""
    padding_rows = padded_size - real_size
    if len(tasks) == 1 and padding_rows == 0:
        return dict(tasks[0])
    merged: dict[str, np.ndarray] = {}
    for name in tasks[0]:
        parts = [task[name] for task in tasks]
        if pad_variable_length:
            parts = _pad_to_common_shape(parts)
        if padding_rows > 0:
            last = parts[-1]
            parts.append(np.repeat(last[:1], padding_rows, axis=0))
        merged[name] = np.concatenate(parts, axis=0)
    return merged


def _pad_to_common_shape(parts: list[np.ndarray]) -> list[np.ndarray]:
    target = list(parts[0].shape[1:])
    for array in parts[1:]:
        for dim, size in enumerate(array.shape[1:]):
            if size > target[dim]:
                target[dim] = size
    padded = []
    for array in parts:
        if list(array.shape[1:]) == target:
            padded.append(array)
            continue
        if array.size == 0:
            raise invalid_argument("Got empty tensor in batch of non-empty tensors.")
        out = np.full((array.shape[0], *target), array.flat[0], dtype=array.dtype)
        out[tuple(slice(0, n) for n in array.shape)] = array
        padded.append(out)
    return padded


def split_outputs(
    outputs: Mapping[str, np.ndarray], sizes: Sequence[int], padded_size: int
) -> list[dict[str, np.ndarray]]:
    """Per-task outputs: rows of batched outputs, whole tensors otherwise."""
    if len(sizes) == 1 and sizes[0] == padded_size:
        return [dict(outputs)]
    per_task: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for name, array in outputs.items():
        if array.ndim >= 1 and array.shape[0] == padded_size:
            start = 0
            for index, size in enumerate(sizes):
                per_task[index][name] = array[start : start + size]
                start += size
        else:
            for result in per_task:
                result[name] = array
    return per_task


def concat_parts(parts: Sequence[Mapping[str, np.ndarray]], sizes: Sequence[int]) -> dict:
    """Reassemble the outputs of a task that large-batch splitting cut into parts."""
    whole: dict[str, np.ndarray] = {}
    for name, first in parts[0].items():
        if first.ndim >= 1 and all(
            p[name].shape[:1] == (n,) for p, n in zip(parts, sizes, strict=True)
        ):
            whole[name] = np.concatenate([p[name] for p in parts], axis=0)
        else:
            whole[name] = first
    return whole
