"""What a session is created with and what each run asks of it.

``SessionOptions`` comes from the ``--tensorflow_*`` flags and becomes the
ConfigProto of every session the server creates; ``RunOptions`` is a run's
serialized ``RunOptions`` in a TF_Buffer: the caller's deadline as
``timeout_in_ms``, or the run on the calling thread, or nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from collections.abc import Iterator
from dataclasses import dataclass

from tensorflow.core.protobuf import config_pb2

from graph_service.runtime.tf_c_api import Status, TF_Buffer, lib


@dataclass(frozen=True)
class SessionOptions:
    """What the session is created with (from the tensorflow_* flags)."""

    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0
    tags: tuple[str, ...] = ("serve",)

    @property
    def runs_in_caller_thread(self) -> bool:
        """Whether runs without a deadline execute their graph on the calling thread.

        With the default pool size (0) a run's ops are handed to TensorFlow's
        inter-op pool and the caller sleeps until they are done: two thread
        wake-ups per run, each a chance to wait behind another thread on a busy
        machine. Running them on the caller (``RunOptions.inter_op_thread_pool
        = -1``) saves both; concurrent runs still overlap, each on its own
        request or batch thread, and big ops still use the intra-op pool. A
        run with a deadline keeps the pool: only then can TensorFlow cancel it
        while it runs. An explicit pool size (the flag > 0) is kept as given.
        """
        return self.inter_op_parallelism == 0


@contextlib.contextmanager
def new_session_options(options: SessionOptions) -> Iterator[int]:
    """TF_SessionOptions carrying the ConfigProto every session of the server gets."""
    c = lib()
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=options.intra_op_parallelism,
        inter_op_parallelism_threads=options.inter_op_parallelism,
        allow_soft_placement=True,
    ).SerializeToString()
    session_options = c.TF_NewSessionOptions()
    try:
        with Status() as status:
            c.TF_SetConfig(session_options, config, len(config), status.ptr)
            status.check()
        yield session_options
    finally:
        c.TF_DeleteSessionOptions(session_options)


class RunOptions:
    """A serialized RunOptions in a TF_Buffer, or nothing (NULL)."""

    __slots__ = ("_buffer", "_data", "address")

    def __init__(self, options: config_pb2.RunOptions | None) -> None:
        if options is None:
            self.address = None
            return
        self._data = options.SerializeToString()
        data = ctypes.cast(ctypes.c_char_p(self._data), ctypes.c_void_p)
        self._buffer = TF_Buffer(data, len(self._data), None)
        self.address = ctypes.addressof(self._buffer)

    @classmethod
    def for_run(cls, timeout_s: float | None, caller_thread: bool) -> RunOptions:
        if timeout_s is not None:
            millis = max(1, math.ceil(timeout_s * 1000))
            return cls(config_pb2.RunOptions(timeout_in_ms=millis))
        return _IN_CALLER_THREAD if caller_thread else _DEFAULT_RUN


# Shared by every run they fit: TensorFlow only reads the buffer.
_DEFAULT_RUN = RunOptions(None)
_IN_CALLER_THREAD = RunOptions(config_pb2.RunOptions(inter_op_thread_pool=-1))
