"""The fuzz tests run against the same real stack as the fault tests (tests/reliability).

Each run prints ``FIGURES`` lines (with ``-s``) counting the requests tried and
how they were refused, for docs/reliability.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from support.fault_stack import logic, stack  # noqa: F401 - fixtures shared with the fault tests


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter]:
    """Statuses seen by one module, printed when it ends."""
    counts: Counter = Counter()
    yield counts
    print(
        f"\nFIGURES tally: total={sum(counts.values())}, "
        + ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str))
    )
