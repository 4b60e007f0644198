"""The ceiling: FastAPI on uvicorn that parses the request and answers a constant.

The same server stack as the logic tier (uvicorn, uvloop, httptools, no access
log) and the same route, but no validation, features or graph call: the most
requests per second a Python web tier on this machine can answer at all.

    python -m bench.peers.ceiling --port 8000
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any

import uvicorn
from fastapi import Body, FastAPI

ANSWER = {"prediction": {"score": 0.5}}

app = FastAPI()


@app.post("/v1/models/{name}/predict")
async def predict(name: str, record: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return ANSWER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    target: Any = app if args.workers == 1 else "bench.peers.ceiling:app"
    uvicorn.run(
        target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
