"""How much of each request the prediction log keeps (``storage.payloads``).

``full`` keeps every row's ``input`` and ``output`` JSON; ``none`` keeps
neither; ``sampled`` keeps them for a share of request ids
(``storage.payload_sample_rate``), chosen by a hash of the id, so every
record of a batch request, every replica and every retry decide alike. The
row itself always stays: the request id (feedback joins on it), version, arm,
score, latency, status, outcome, and the aggregates count every row. At
1,000 requests/s the payloads are most of the log's disk
(docs/prediction_log.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

PayloadMode = Literal["full", "sampled", "none"]
_SCALE = float(1 << 64)


@dataclass(frozen=True)
class PayloadPolicy:
    mode: PayloadMode = "full"
    sample_rate: float = 0.01

    def keeps(self, request_id: str) -> bool:
        """Whether this request's payloads are stored."""
        if self.mode == "full":
            return True
        if self.mode == "none" or self.sample_rate <= 0.0:
            return False
        digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") / _SCALE < self.sample_rate

    def apply(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` with ``input`` and ``output`` emptied where they are not kept (in place)."""
        if self.mode == "full":
            return rows
        decided: dict[str, bool] = {}
        for row in rows:
            request_id = row["request_id"]
            keep = decided.get(request_id)
            if keep is None:
                keep = decided[request_id] = self.keeps(request_id)
            if not keep:
                row["input"] = None
                row["output"] = None
        return rows
