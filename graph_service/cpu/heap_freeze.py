"""Keep Python's cyclic garbage collector off the serving path.

With TensorFlow, gRPC and protobuf imported the interpreter holds about 350,000
tracked objects, and a full (generation 2) collection walks all of them: 200-250
ms on the bench machine, during which no request moves. Such a collection came
about once per few seconds of load-and-serve (a version load allocates enough
survivors to trigger it), so p99 while versions loaded was several times the
steady state. ``gc.freeze()`` moves everything alive into a permanent generation
the collector never scans; done once after start-up and again after each load
(O(1): the generations are spliced, not walked), collections only see the
objects made since, and they take microseconds.

The price: cyclic garbage made before a freeze is never reclaimed. Servables
are released by reference counting when their last handle goes, so that is the
few cycles each load leaves, not a version's memory.
"""

from __future__ import annotations

import gc


def freeze_after_startup() -> None:
    """Collect once (start-up garbage), then freeze what remains."""
    gc.collect()
    gc.freeze()


def freeze() -> None:
    """Freeze what is alive now (after a version loaded); never walks the heap."""
    gc.freeze()
