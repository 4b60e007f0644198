"""BatchingParameters text files: TF Serving's field names, defaults and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graph_service.batching.batching_config import (
    BatchingParameters,
    batching_parameters_message_class,
    load_batching_parameters,
    parse_batching_parameters,
)

FULL = """
max_batch_size { value: 128 }
batch_timeout_micros { value: 2500 }
max_enqueued_batches { value: 1000000 }
num_batch_threads { value: 8 }
thread_pool_name { value: "my_batch_threads" }
allowed_batch_sizes: 8
allowed_batch_sizes: 32
allowed_batch_sizes: 128
pad_variable_length_inputs: true
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "batching_parameters.txt"
    path.write_text(text)
    return str(path)


def test_full_file_is_read_field_by_field(tmp_path: Path) -> None:
    params = load_batching_parameters(write(tmp_path, FULL))
    assert params == BatchingParameters(
        max_batch_size=128,
        batch_timeout_micros=2500,
        max_enqueued_batches=1000000,
        num_batch_threads=8,
        thread_pool_name="my_batch_threads",
        allowed_batch_sizes=(8, 32, 128),
        pad_variable_length_inputs=True,
    )
    assert params.max_execution_batch_size == 128
    assert params.batch_timeout_seconds == pytest.approx(0.0025)


def test_large_batch_splitting_fields(tmp_path: Path) -> None:
    params = load_batching_parameters(
        write(
            tmp_path,
            """
            max_batch_size { value: 1024 }
            enable_large_batch_splitting { value: true }
            max_execution_batch_size { value: 64 }
            allowed_batch_sizes: [16, 64]
            """,
        )
    )
    assert params.enable_large_batch_splitting is True
    assert params.max_batch_size == 1024
    assert params.max_execution_batch_size == 64
    assert params.allowed_batch_sizes == (16, 64)


def test_splitting_without_execution_size_executes_up_to_max_batch_size() -> None:
    params = parse_batching_parameters(
        "max_batch_size { value: 40 } enable_large_batch_splitting { value: true }"
    )
    assert params.max_execution_batch_size == 40


def test_empty_file_gives_tf_serving_defaults(tmp_path: Path) -> None:
    params = load_batching_parameters(write(tmp_path, "# nothing set\n"))
    assert params.max_batch_size == 1000
    assert params.batch_timeout_micros == 0
    assert params.max_enqueued_batches == 10
    assert params.num_batch_threads == len(os.sched_getaffinity(0))
    assert params.thread_pool_name == "batch_threads"
    assert params.allowed_batch_sizes == ()
    assert params.pad_variable_length_inputs is False
    assert params.enable_large_batch_splitting is False
    assert params.max_execution_batch_size == 1000


def test_zero_max_enqueued_batches_is_rewritten_to_one_like_tf_serving() -> None:
    assert parse_batching_parameters("max_enqueued_batches { value: 0 }").max_enqueued_batches == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_batch_sise { value: 8 }", 'has no field named "max_batch_sise"'),
        ("batch_padding_policy: 'PAD_UP'", 'has no field named "batch_padding_policy"'),
        ("max_batch_size: 8", 'Expected "{"'),
        ("max_batch_size { value: 8 ", "Expected"),
        ("pad_variable_length_inputs: maybe", "pad_variable_length_inputs"),
    ],
)
def test_typos_fail_with_protobufs_message_and_the_file_name(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load_batching_parameters(path)
    message = str(caught.value)
    assert expected in message
    assert path in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [4, 2, 8]",
            "allowed_batch_sizes entries must be monotonically increasing",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [2, 4]",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; "
            "expected 8",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [0, 8]",
            "allowed_batch_sizes entries must be positive",
        ),
        ("max_batch_size { value: 0 }", "max_batch_size must be positive; was 0"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive; was 0"),
        ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be non-negative"),
        ("max_enqueued_batches { value: -3 }", "max_enqueued_batches must be positive"),
        (
            "max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
            "max_execution_batch_size { value: 16 }",
            "max_batch_size must be greater than or equal to max_execution_batch_size",
        ),
        (
            "max_batch_size { value: 64 } enable_large_batch_splitting { value: true } "
            "max_execution_batch_size { value: 16 } allowed_batch_sizes: [8, 64]",
            "Last entry in allowed_batch_sizes must be equal to max_execution_batch_size",
        ),
        (
            "enable_large_batch_splitting { value: true } max_execution_batch_size { value: 0 }",
            "max_execution_batch_size must be positive",
        ),
    ],
)
def test_invalid_combinations_are_refused_naming_the_rule(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_batching_parameters(text, source="params.txt")
    assert expected in str(caught.value)
    assert "params.txt" in str(caught.value)


def test_missing_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ValueError, match=r"nope\.txt"):
        load_batching_parameters(str(missing))


def test_message_type_reads_tf_servings_binary_encoding() -> None:
    """The rebuilt type uses TF Serving's field numbers: hand-encoded bytes decode right."""
    # field 1 (max_batch_size, Int64Value{value: 32}): tag 0x0a, len 2, inner tag 0x08, 32
    # field 6 (allowed_batch_sizes, packed int64 [32]): tag 0x32, len 1, 32
    # field 7 (pad_variable_length_inputs, bool true): tag 0x38, 1
    # field 8 (enable_large_batch_splitting, BoolValue{true}): tag 0x42, len 2, 0x08, 1
    # field 9 (max_execution_batch_size, Int64Value{16}): tag 0x4a, len 2, 0x08, 16
    wire = bytes([0x0A, 2, 0x08, 32, 0x32, 1, 32, 0x38, 1, 0x42, 2, 0x08, 1, 0x4A, 2, 0x08, 16])
    proto = batching_parameters_message_class().FromString(wire)
    assert proto.max_batch_size.value == 32
    assert list(proto.allowed_batch_sizes) == [32]
    assert proto.pad_variable_length_inputs is True
    assert proto.enable_large_batch_splitting.value is True
    assert proto.max_execution_batch_size.value == 16
