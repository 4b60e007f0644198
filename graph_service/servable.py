"""One loaded SavedModel version, served through a TF1 session like TF Serving does.

TF Serving loads every SavedModel (TF1 builder exports, ``tf.saved_model.save``
and Keras exports alike) into a session and runs signatures by their tensor
names; ``tf.saved_model.load`` cannot load some TF1 exports, the session path
loads them all. Each (feeds, fetches) combination gets a cached
C++ ``Session::MakeCallable`` (``Session._make_callable_from_options``; the
public ``make_callable`` with feeds falls back to ``Session.run``): it skips the
per-call pruning and the Python feed checks, about half the cost of
``Session.run`` on small requests, and like the C++ server it does not insist
that a feed match the placeholder's static shape. The call releases the GIL,
so concurrent requests really overlap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from tensorflow.core.protobuf import config_pb2

from graph_service.errors import ServingError

log = logging.getLogger("graph_service")

# TensorFlow's error codes are gRPC's codes.
_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_from_tf_error(exc: BaseException) -> ServingError:
    """Turn a TensorFlow OpError into the ServingError TF Serving would answer with."""
    import tensorflow as tf

    if isinstance(exc, tf.errors.OpError):
        code = _CODES.get(exc.error_code, grpc.StatusCode.UNKNOWN)
        return ServingError(code, exc.message)
    return ServingError(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class SessionOptions:
    """What the session is created with (from the tensorflow_* flags)."""

    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0
    tags: tuple[str, ...] = ("serve",)


class Servable:
    """A SavedModel loaded into its own graph and session."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        session,
        meta_graph,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._session = session
        self.meta_graph = meta_graph
        self.signatures = dict(meta_graph.signature_def)
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name: str, version: int, path: Path, options: SessionOptions) -> Servable:
        """Load ``path`` into a fresh graph/session; raises ServingError on any failure."""
        import tensorflow as tf

        v1 = tf.compat.v1
        config = v1.ConfigProto(
            intra_op_parallelism_threads=options.intra_op_parallelism,
            inter_op_parallelism_threads=options.inter_op_parallelism,
            allow_soft_placement=True,
        )
        graph = tf.Graph()
        session = v1.Session(graph=graph, config=config)
        try:
            with graph.as_default():
                meta_graph = v1.saved_model.loader.load(session, set(options.tags), str(path))
        except Exception as exc:
            session.close()
            raise _load_error(path, exc) from None
        graph.finalize()  # nothing may add ops to a serving graph (thread safety, memory)
        return cls(name, version, path, session, meta_graph)

    def run_tensors(
        self, feed_names: Sequence[str], fetch_names: Sequence[str], values: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Run the graph: feed tensors by name, fetch tensors by name."""
        key = (tuple(feed_names), tuple(fetch_names))
        fn = self._callables.get(key)
        if fn is None:
            fn = self._make_callable(key)
        try:
            return list(fn(*values))
        except Exception as exc:
            raise status_from_tf_error(exc) from None

    def run(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_aliases: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Run one signature with inputs/outputs named by their signature aliases."""
        signature = self.signatures[signature_name]
        aliases = sorted(inputs)
        feed_names = [signature.inputs[a].name for a in aliases]
        fetch_names = [signature.outputs[a].name for a in output_aliases]
        values = self.run_tensors(feed_names, fetch_names, [inputs[a] for a in aliases])
        return dict(zip(output_aliases, values, strict=True))

    def _make_callable(self, key: tuple[tuple[str, ...], tuple[str, ...]]) -> Callable:
        with self._lock:
            fn = self._callables.get(key)
            if fn is None:
                feeds, fetches = key
                try:
                    fn = self._session._make_callable_from_options(
                        config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                    )
                except Exception as exc:
                    raise status_from_tf_error(exc) from None
                self._callables[key] = fn
            return fn

    def close(self) -> None:
        with self._lock:
            self._callables.clear()
        self._session.close()


def _load_error(path: Path, exc: BaseException) -> ServingError:
    import tensorflow as tf

    if isinstance(exc, tf.errors.OpError):
        return status_from_tf_error(exc)
    # The loader raises plain Python errors (IOError) for unparsable/missing files.
    message = str(exc) or type(exc).__name__
    if "parse" in message.lower():
        code = grpc.StatusCode.DATA_LOSS
    elif isinstance(exc, OSError):
        code = grpc.StatusCode.NOT_FOUND
    else:
        code = grpc.StatusCode.INTERNAL
    return ServingError(code, f"Failed to load SavedModel at {path}: {message}")
