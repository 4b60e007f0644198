"""The KServe transformer: features in ``preprocess``, the graph tier as the v1 predictor.

KServe's v1 inference protocol is TF Serving's REST API, so the graph tier
(or TF Serving itself) is a KServe predictor as it stands:
``--predictor_host 127.0.0.1:<rest port>`` makes the default ``predict`` POST
``{"instances": ...}`` to ``/v1/models/<name>:predict`` there. Started the
way KServe's transformer examples start, with KServe's own argument parser
and ``ModelServer``, its defaults kept (one worker, a latency log line per
request) but two: its gRPC server is off (``--enable_grpc false``; nothing
calls it here) and REST binds 127.0.0.1 -- KServe hard-codes 0.0.0.0 and
``[::]`` because in a cluster it sits behind a Service, and a benchmark on a
shared machine listens on loopback only::

    python -m bench.peers.kserve_transformer --model_name ctr --http_port 8080 \
        --enable_grpc false --predictor_host 127.0.0.1:8501 --transformer features.skops

Clients POST the raw record to ``/v1/models/ctr:predict``.
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
import uvicorn
from kserve import model_server

from bench.peers.recipe_features import featurize, load_transformer


class CtrTransformer(kserve.Model):
    """Raw record in, ``{"predictions": [{"score": ...}]}`` out."""

    def __init__(self, name: str, transformer_path: str) -> None:
        super().__init__(name)
        self.transformer = load_transformer(transformer_path)
        self.ready = True

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> dict:
        return {"instances": featurize(self.transformer, payload).tolist()}

    def postprocess(
        self,
        result: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict:
        return {"predictions": [{"score": float(row[0])} for row in result["predictions"]]}


class _LoopbackConfig(uvicorn.Config):
    """uvicorn's Config, bound to 127.0.0.1 whatever host the caller asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


def _bind_loopback() -> None:
    """KServe's REST server builds ``uvicorn.Config(host="0.0.0.0", ...)``: in this process
    every uvicorn Config binds loopback instead."""
    uvicorn.Config = _LoopbackConfig


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--transformer", required=True, help="the fitted transformer file")
    args, _ = parser.parse_known_args()
    model = CtrTransformer(args.model_name, args.transformer)
    _bind_loopback()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
