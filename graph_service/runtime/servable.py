"""One loaded SavedModel version, served through a session like TF Serving does.

TF Serving loads every SavedModel (TF1 builder exports, ``tf.saved_model.save``
and Keras exports alike) into a session and runs signatures by their tensor
names; ``tf.saved_model.load`` cannot load some TF1 exports, the session path
loads them all. The load is TensorFlow's own C++ SavedModel loader and each
run a ``TF_SessionRun``, both through the C API (``tf_c_api``): neither holds
the GIL, so a version loading never stalls the requests of the versions that
serve, and concurrent requests really overlap. Like the C++ server, a feed
need not match its placeholder's static shape.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from graph_service.cpu.load_pacing import no_pacing
from graph_service.errors import ServingError
from graph_service.runtime.c_tensors import InputTensors, to_numpy
from graph_service.runtime.meta_graph_wire import split_meta_graph
from graph_service.runtime.run_placement import has_value_dependent_ops
from graph_service.runtime.session_options import RunOptions, SessionOptions, new_session_options
from graph_service.runtime.tf_c_api import CApiError, Status, TF_Buffer, TF_Output, lib
from graph_service.runtime.tf_errors import load_error, missing_checkpoint, status_from_tf_error

log = logging.getLogger("graph_service")

# Where a C call runs: the caller's thread by default, or e.g. a low-priority
# worker's (``LowPriorityWorker.call``) while a version loads and warms up.
CallIn = Callable[..., Any]


def run_here(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


@dataclass(frozen=True)
class _RunPlan:
    """The resolved feeds and fetches of one (feed names, fetch names) combination."""

    feeds: ctypes.Array
    fetches: ctypes.Array
    # Positions in ``fetches`` of each requested fetch (duplicates fetched once).
    order: tuple[int, ...]


class Servable:
    """A SavedModel loaded into its own graph and session."""

    def __init__(
        self,
        name: str,
        version: int,
        path: Path,
        session: int,
        graph: int,
        meta_graph,
        caller_thread: bool = False,
        value_dependent_ops: bool = True,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._session = session
        self._graph = graph
        self.meta_graph = meta_graph
        self.signatures = dict(meta_graph.signature_def)
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], _RunPlan] = {}
        # Facts the request paths derive from this version's signatures once and
        # then read on every request (prediction.py's predict plans, the
        # alias-to-tensor names below); they live and die with the version.
        self.derived: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._caller_thread = caller_thread
        # Whether the graph has ops whose cost can follow input values (run_placement.py);
        # found in the serialized graph by ``load``, which never parses it (meta_graph_wire.py).
        self.value_dependent_ops = value_dependent_ops

    @property
    def runs_in_caller_thread(self) -> bool:
        """Runs without a deadline execute on the calling thread (no inter-op pool)."""
        return self._caller_thread

    @staticmethod
    def prepare_runtime(options: SessionOptions) -> None:
        """Create TensorFlow's process-wide thread pools and devices on this thread.

        The first session creates them, sized by its options, and their threads
        inherit the creating thread's CPU priority: call this from a normal-priority
        thread before any version loads on a low-priority one.
        """
        c = lib()
        graph = c.TF_NewGraph()
        try:
            with new_session_options(options) as session_options, Status() as status:
                session = c.TF_NewSession(graph, session_options, status.ptr)
                status.check()
                c.TF_CloseSession(session, status.ptr)
                c.TF_DeleteSession(session, status.ptr)
        finally:
            c.TF_DeleteGraph(graph)

    @classmethod
    def load(
        cls,
        name: str,
        version: int,
        path: Path,
        options: SessionOptions,
        call: CallIn = run_here,
        pace: Callable[[], None] = no_pacing,
    ) -> Servable:
        """Load ``path`` into a fresh graph/session; raises ServingError on any failure.

        ``call`` runs the C++ load (everything but reading the MetaGraphDef it returns);
        its restore and init runs execute on that same thread where the options
        allow it (``SessionOptions.runs_in_caller_thread``), so at its priority.
        ``pace`` is offered a pause between the steps of Python work that follow
        (load_pacing.py).
        """
        c = lib()
        load_run = RunOptions.for_run(None, options.runs_in_caller_thread)
        tags = (ctypes.c_char_p * len(options.tags))(*(t.encode() for t in options.tags))
        graph = c.TF_NewGraph()
        c.TF_SetRequireShapeInferenceFns(graph, False)  # as tf.Graph; TF Serving never asks
        meta_buffer = c.TF_NewBuffer()
        try:
            pace()
            with new_session_options(options) as session_options, Status() as status:
                pace()  # each short ctypes call above let the loader keep the GIL
                session = call(
                    c.TF_LoadSessionFromSavedModel,
                    session_options, load_run.address, str(path).encode(), tags,
                    len(options.tags),
                    graph, meta_buffer, status.ptr,
                )
                status.check()
            meta_graph, value_dependent_ops = _read_meta_graph(meta_buffer.contents, pace)
        except CApiError as exc:
            c.TF_DeleteGraph(graph)
            raise load_error(path, exc) from None
        finally:
            c.TF_DeleteBuffer(meta_buffer)
        servable = cls(
            name, version, path, session, graph, meta_graph, options.runs_in_caller_thread,
            value_dependent_ops,
        )
        missing = missing_checkpoint(path, meta_graph)
        if missing is not None:
            servable.close()
            raise missing
        return servable

    def run_tensors(
        self,
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        values: Sequence[np.ndarray],
        call: CallIn = run_here,
        timeout_s: float | None = None,
    ) -> list[np.ndarray]:
        """Run the graph: feed tensors by name, fetch tensors by name.

        ``call`` runs the TF_SessionRun (warmup passes the low-priority worker's);
        after ``timeout_s`` TensorFlow cancels the run (DEADLINE_EXCEEDED), as TF
        Serving does with ``RunOptions.timeout_in_ms``.
        """
        key = (tuple(feed_names), tuple(fetch_names))
        plan = self._plans.get(key) or self._plan(key)
        c = lib()
        fetched = (ctypes.c_void_p * len(plan.fetches))()
        run_options = RunOptions.for_run(timeout_s, self._caller_thread)
        inputs = InputTensors(values)
        try:
            with Status() as status:
                call(
                    c.TF_SessionRun,
                    self._session, run_options.address,
                    plan.feeds, inputs.pointers, len(plan.feeds),
                    plan.fetches, fetched, len(plan.fetches),
                    None, 0, None, status.ptr,
                )
                status.check()
            arrays = [to_numpy(t) for t in fetched]
        except CApiError as exc:
            raise status_from_tf_error(exc) from None
        finally:
            inputs.free()
            for tensor in fetched:
                if tensor:
                    c.TF_DeleteTensor(tensor)
        return [arrays[i] for i in plan.order]

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_aliases: Sequence[str],
        call: CallIn = run_here,
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one signature with inputs/outputs named by their signature aliases."""
        key = ("run", signature_name, tuple(inputs), tuple(output_aliases))
        names = self.derived.get(key)
        if names is None:
            signature = self.signatures[signature_name]
            aliases = tuple(sorted(inputs))
            feed_names = tuple(signature.inputs[a].name for a in aliases)
            fetch_names = tuple(signature.outputs[a].name for a in output_aliases)
            names = self.derived[key] = (aliases, feed_names, fetch_names)
        aliases, feed_names, fetch_names = names
        values = self.run_tensors(
            feed_names, fetch_names, [inputs[a] for a in aliases], call, timeout_s
        )
        return dict(zip(output_aliases, values, strict=True))

    def _plan(self, key: tuple[tuple[str, ...], tuple[str, ...]]) -> _RunPlan:
        feeds, fetches = key
        if len(set(feeds)) != len(feeds):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Duplicate feeds in {feeds}")
        unique = list(dict.fromkeys(fetches))
        plan = _RunPlan(
            feeds=(TF_Output * len(feeds))(*(self._output(n) for n in feeds)),
            fetches=(TF_Output * len(unique))(*(self._output(n) for n in unique)),
            order=tuple(unique.index(n) for n in fetches),
        )
        with self._lock:
            self._plans[key] = plan
        return plan

    def _output(self, tensor_name: str) -> TF_Output:
        c = lib()
        op_name, _, index = tensor_name.rpartition(":")
        if not op_name or not index.isdigit():
            op_name, index = tensor_name, "0"
        operation = c.TF_GraphOperationByName(self._graph, op_name.encode())
        if not operation or int(index) >= c.TF_OperationNumOutputs(operation):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Tensor {tensor_name}, specified in either feed_devices or fetch_devices "
                "was not found in the Graph",
            )
        return TF_Output(operation, int(index))

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
            self._plans.clear()
        if not session:
            return
        c = lib()
        with Status() as status:
            c.TF_CloseSession(session, status.ptr)
            c.TF_DeleteSession(session, status.ptr)
        c.TF_DeleteGraph(self._graph)


def _read_meta_graph(buffer: TF_Buffer, pace: Callable[[], None]) -> tuple[Any, bool]:
    """The loader's MetaGraphDef (without its graph), and whether the graph has value-
    dependent ops: the graph is searched in place in TensorFlow's buffer, neither
    copied nor kept (only the small rest of the message is copied to be parsed).
    """
    pace()
    raw = (ctypes.c_char * buffer.length).from_address(buffer.data) if buffer.length else b""
    view = memoryview(raw).cast("B")
    meta_graph, graph_def = split_meta_graph(view)
    pace()
    return meta_graph, has_value_dependent_ops(graph_def, pace)
