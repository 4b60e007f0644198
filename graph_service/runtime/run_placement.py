"""Which session runs may execute on the event loop thread instead of the run pool.

Handing a run to the pool costs two thread wake-ups (loop -> pool thread -> loop).
For a small model that is most of the request: the demo model runs in 0.04 ms,
while a gRPC Predict at concurrency 1 took 1.26 ms through the pool and 0.92 ms
with the run on the loop thread (REST: 0.82 -> 0.44 ms). Wake-ups are also what
a busy core delays, so the loop-thread path is the one that a version loading
beside it disturbs least.

But the loop serves every request, and a run on it cannot be cancelled at its
caller's deadline (TensorFlow cancels only runs it executes on its own pool). So a
run goes to the loop only when it is known to be short, by evidence rather than
by hope:

- its graph has no control flow: no loops or conditionals anywhere, functions
  included, so its cost follows its input shapes and not its input values;
- every input is numeric (a string's cost follows its length, not its shape);
- the last ``PROMOTE_AFTER`` runs of that signature all finished within
  ``budget_s`` with at least as many input elements as this request has.

Two runs in a row over budget at or below the proven size by their own CPU time,
or one ten times over in wall time, send the signature back to the pool until it
proves itself again. Every run is timed, on the pool too.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from graph_service.cpu.load_pacing import no_pacing
from graph_service.runtime.meta_graph_wire import Buffer, graph_has_ops

# Ops whose cost can follow the values of the inputs (loops, branches, calls into
# code we cannot see), in TF1 and TF2 spelling. A graph with any of them never runs
# on the loop.
VALUE_DEPENDENT_OPS = frozenset(
    {
        "While", "StatelessWhile", "_While",
        "If", "StatelessIf", "_If",
        "Case", "StatelessCase",
        "Enter", "Exit", "LoopCond", "NextIteration", "Switch", "Merge", "RefSwitch",
        "RefMerge", "RefEnter", "RefExit", "RefNextIteration",
        "PyFunc", "EagerPyFunc", "PyFuncStateless",
        "For", "Timestamp",
    }
)  # fmt: skip
PROMOTE_AFTER = 16
SLOW_BY_FAR = 10  # x budget: a run on the loop this slow goes back, whatever the cause
DEFAULT_BUDGET_S = 0.0005


def has_value_dependent_ops(graph_def: Buffer, pace: Callable[[], None] = no_pacing) -> bool:
    """Whether the serialized graph, or any function in its library, contains such an op."""
    return graph_has_ops(graph_def, VALUE_DEPENDENT_OPS, pace)


def numeric_elements(inputs: Mapping[str, np.ndarray]) -> int | None:
    """Total input elements, or None when an input is not numeric."""
    total = 0
    for array in inputs.values():
        if array.dtype.kind not in "biufc":
            return None
        total += array.size
    return total


@dataclass
class _Record:
    fast_runs: int = 0  # consecutive runs within budget
    proven_elements: int = 0  # the largest input size among them
    slow_in_a_row: int = 0  # proven-size runs over budget by their own work


class RunPlacement:
    """Per (version, signature): may its next run stay on the loop thread?

    A version is admitted when it loads (``admit``, on the loading thread, by the
    scan ``Servable.load`` made of its graph); one that is not admitted never runs on
    the loop, and its runs are not recorded. Reads and writes come from the loop
    and from pool threads; a lock keeps each record's fields consistent.
    """

    def __init__(self, budget_s: float = DEFAULT_BUDGET_S) -> None:
        self.budget_s = budget_s
        # servable -> {signature: _Record}, for admitted versions only
        self._records: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def admit(self, servable) -> None:
        """Let ``servable`` earn the loop if its runs can only depend on input shapes."""
        if (
            self.budget_s > 0
            and servable.runs_in_caller_thread
            and not servable.value_dependent_ops
        ):
            with self._lock:
                self._records[servable] = {}

    def on_loop(self, servable, signature: str, elements: int | None) -> bool:
        records = self._records.get(servable)
        if records is None or elements is None:
            return False
        record = records.get(signature)
        return (
            record is not None
            and record.fast_runs >= PROMOTE_AFTER
            and elements <= record.proven_elements
        )

    def record(
        self,
        servable,
        signature: str,
        elements: int | None,
        seconds: float,
        cpu_seconds: float | None = None,
    ) -> None:
        """One run's wall time, and the calling thread's CPU time where it ran the graph.

        Earning the loop takes wall time within budget. Losing it takes two runs in
        a row that were slow by their own work (CPU over budget too; one alone can
        be a garbage collection), or one slow by far (10x). A run on the loop also
        waits for the GIL and for the core, and while a version loads beside it
        those waits alone passed the budget: they say nothing of the model, and
        sending it back to the pool then only adds hand-offs.
        """
        records = self._records.get(servable)
        if records is None or elements is None:
            return
        budget = self.budget_s
        with self._lock:
            record = records.setdefault(signature, _Record())
            if seconds <= budget:
                record.fast_runs += 1
                record.proven_elements = max(record.proven_elements, elements)
                record.slow_in_a_row = 0
                return
            proven = record.fast_runs >= PROMOTE_AFTER
            if proven and elements > record.proven_elements:
                return  # larger than proven: no verdict on the proven size
            if proven and seconds <= SLOW_BY_FAR * budget:
                if cpu_seconds is not None and cpu_seconds <= budget:
                    return  # waited, did not work: still proven
                record.slow_in_a_row += 1
                if record.slow_in_a_row < 2:
                    return  # one run's own work can be a garbage collection
            record.fast_runs = 0
            record.proven_elements = 0
            record.slow_in_a_row = 0
