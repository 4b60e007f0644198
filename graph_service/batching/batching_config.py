"""TF Serving's ``--batching_parameters_file``: the ``BatchingParameters`` text proto.

``tensorflow-serving-api`` does not ship ``session_bundle_config.proto``, so the
message type is rebuilt here from a ``FileDescriptorProto`` with the same package,
names, field numbers and wrapper types as TF Serving's
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto). Parsing goes
through ``google.protobuf.text_format`` so a typo or an unknown field is rejected
with protobuf's own message, exactly as ``tensorflow_model_server`` rejects it.

Unset fields take the defaults TF Serving falls back to (SharedBatchScheduler's
``Options``/``QueueOptions``), and the combinations TF Serving refuses at queue
creation are refused here up front, so a bad file stops the server at start-up
instead of failing every request later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message, text_format, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass

_PACKAGE = "tensorflow.serving"
_MESSAGE = "BatchingParameters"

# Field layout of TF Serving's BatchingParameters: (name, number, wrapper type or
# scalar type, repeated). Wrapper fields distinguish "unset" from zero, which is
# how TF Serving decides between its defaults and the given value.
_FIELDS: tuple[tuple[str, int, str, bool], ...] = (
    ("max_batch_size", 1, ".google.protobuf.Int64Value", False),
    ("batch_timeout_micros", 2, ".google.protobuf.Int64Value", False),
    ("max_enqueued_batches", 3, ".google.protobuf.Int64Value", False),
    ("num_batch_threads", 4, ".google.protobuf.Int64Value", False),
    ("thread_pool_name", 5, ".google.protobuf.StringValue", False),
    ("allowed_batch_sizes", 6, "int64", True),
    ("pad_variable_length_inputs", 7, "bool", False),
    ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue", False),
    ("max_execution_batch_size", 9, ".google.protobuf.Int64Value", False),
)

_SCALAR_TYPES = {
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
}

# SharedBatchScheduler::QueueOptions defaults (input_batch_size_limit = 1000,
# batch_timeout_micros = 0, max_enqueued_batches = 10) and Options defaults.
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_THREAD_POOL_NAME = "batch_threads"
# What tensorflow_model_server names the pool when --enable_batching comes
# without --batching_parameters_file.
SERVER_THREAD_POOL_NAME = "model_server_batch_threads"


def _max_parallelism() -> int:
    """TF's port::MaxParallelism(): the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchingParameters:
    """Validated batching configuration, with TF Serving's defaults filled in.

    ``max_batch_size`` is the largest request (task) a queue accepts;
    ``max_execution_batch_size`` the largest merged batch handed to the model.
    They differ only with ``enable_large_batch_splitting``, as in TF Serving.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = field(default_factory=lambda: _max_parallelism())
    thread_pool_name: str = DEFAULT_THREAD_POOL_NAME
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0 -> max_batch_size

    def __post_init__(self) -> None:
        if self.max_execution_batch_size == 0 or not self.enable_large_batch_splitting:
            # Without splitting TF Serving executes batches up to the input limit.
            object.__setattr__(self, "max_execution_batch_size", self.max_batch_size)
        if self.max_enqueued_batches == 0 and not self.enable_large_batch_splitting:
            # SharedBatchScheduler::AddQueue rewrites 0 to 1 for old low-QPS configs.
            object.__setattr__(self, "max_enqueued_batches", 1)
        object.__setattr__(self, "allowed_batch_sizes", tuple(self.allowed_batch_sizes))
        _validate(self)

    @property
    def batch_timeout_seconds(self) -> float:
        return self.batch_timeout_micros / 1e6


def _validate(p: BatchingParameters) -> None:
    """Reject what SharedBatchScheduler/BatchingSession refuse, naming field and rule."""
    if p.max_batch_size <= 0:
        raise ValueError(f"max_batch_size must be positive; was {p.max_batch_size}")
    if p.batch_timeout_micros < 0:
        raise ValueError(f"batch_timeout_micros must be non-negative; was {p.batch_timeout_micros}")
    if p.max_enqueued_batches <= 0:
        raise ValueError(f"max_enqueued_batches must be positive; was {p.max_enqueued_batches}")
    if p.num_batch_threads < 1:
        raise ValueError(f"num_batch_threads must be positive; was {p.num_batch_threads}")
    if p.max_execution_batch_size <= 0:
        raise ValueError(
            f"max_execution_batch_size must be positive; was {p.max_execution_batch_size}"
        )
    if p.enable_large_batch_splitting and p.max_batch_size < p.max_execution_batch_size:
        raise ValueError(
            "When enable_large_batch_splitting is true, max_batch_size must be greater "
            f"than or equal to max_execution_batch_size; max_batch_size was "
            f"{p.max_batch_size}, max_execution_batch_size was {p.max_execution_batch_size}"
        )
    sizes = p.allowed_batch_sizes
    if not sizes:
        return
    for index, size in enumerate(sizes):
        if size <= 0:
            raise ValueError(
                f"allowed_batch_sizes entries must be positive; entry {index} was {size}"
            )
        if index > 0 and size <= sizes[index - 1]:
            raise ValueError(
                "allowed_batch_sizes entries must be monotonically increasing; "
                f"entry {index} ({size}) follows {sizes[index - 1]}"
            )
    last = sizes[-1]
    if not p.enable_large_batch_splitting:
        if last != p.max_batch_size:
            raise ValueError(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry "
                f"was {last}; expected {p.max_batch_size}"
            )
    elif last != p.max_execution_batch_size:
        raise ValueError(
            "Last entry in allowed_batch_sizes must be equal to max_execution_batch_size; "
            f"last entry was {last}; expected {p.max_execution_batch_size}"
        )


@cache
def batching_parameters_message_class() -> type[message.Message]:
    """The ``tensorflow.serving.BatchingParameters`` message type, built once.

    It lives in a private descriptor pool so it never clashes with a real
    ``session_bundle_config_pb2`` that some other package might register.
    """
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    msg = file_proto.message_type.add(name=_MESSAGE)
    for name, number, type_name, repeated in _FIELDS:
        field = msg.field.add(name=name, number=number, json_name=_camel(name))
        field.label = (
            descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
            if repeated
            else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
        )
        if type_name in _SCALAR_TYPES:
            field.type = _SCALAR_TYPES[type_name]
        else:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
            field.type_name = type_name
    pool.Add(file_proto)
    return GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{_MESSAGE}"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_batching_parameters(
    text: str, source: str = "<batching parameters>"
) -> BatchingParameters:
    """Parse BatchingParameters text format; errors name ``source``."""
    proto = batching_parameters_message_class()()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as err:
        raise ValueError(f"{source}: invalid BatchingParameters text proto: {err}") from None

    def wrapped(name: str, default: int | str | bool) -> int | str | bool:
        return getattr(proto, name).value if proto.HasField(name) else default

    if proto.HasField("max_execution_batch_size") and proto.max_execution_batch_size.value <= 0:
        raise ValueError(
            f"{source}: invalid BatchingParameters: max_execution_batch_size must be "
            f"positive; was {proto.max_execution_batch_size.value}"
        )

    try:
        return BatchingParameters(
            max_batch_size=int(wrapped("max_batch_size", DEFAULT_MAX_BATCH_SIZE)),
            batch_timeout_micros=int(wrapped("batch_timeout_micros", DEFAULT_BATCH_TIMEOUT_MICROS)),
            max_enqueued_batches=int(wrapped("max_enqueued_batches", DEFAULT_MAX_ENQUEUED_BATCHES)),
            num_batch_threads=int(wrapped("num_batch_threads", _max_parallelism())),
            thread_pool_name=str(wrapped("thread_pool_name", DEFAULT_THREAD_POOL_NAME)),
            allowed_batch_sizes=tuple(int(s) for s in proto.allowed_batch_sizes),
            pad_variable_length_inputs=bool(proto.pad_variable_length_inputs),
            enable_large_batch_splitting=bool(wrapped("enable_large_batch_splitting", False)),
            max_execution_batch_size=int(wrapped("max_execution_batch_size", 0)),
        )
    except ValueError as err:
        raise ValueError(f"{source}: invalid BatchingParameters: {err}") from None


def load_batching_parameters(path: str) -> BatchingParameters:
    """Read ``--batching_parameters_file``; any problem is a ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read batching parameters file {path}: {err}") from None
    return parse_batching_parameters(text, source=path)


def server_default_batching_parameters() -> BatchingParameters:
    """``--enable_batching`` without a parameters file, as tensorflow_model_server does."""
    return BatchingParameters(thread_pool_name=SERVER_THREAD_POOL_NAME)
