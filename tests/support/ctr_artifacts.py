"""Real feature artifacts of the demo ctr model, made in a tmp dir (no TensorFlow needed).

The transformer is ``build_transformer()`` fitted on ``derive()`` of synthetic
records, saved with skops; the manifest follows docs/manifest.md. The e2e
tests add a SavedModel next to these to publish a whole version.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io

from export.manifest import saved_model_files
from logic_service.features import ctr

SIGNATURE_INPUT = "features"


def synthetic_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        record = dict(ctr.EXAMPLE_REQUEST)
        record.update(
            userId=rng.randrange(1, 10**9),
            birthday=f"{rng.randint(1960, 2008)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}T00:00:00.000+0000",
            appId=rng.choice([20000, 20001, 20002]),
            channel=rng.randint(0, 5),
            countryId=rng.choice([182, 1, 33, 49, 86]),
            createTime=f"20{rng.randint(15, 20)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}T02:51:19.000+0000",
            languageId=rng.choice(["20", "1", "7"]),
            type=rng.randint(1, 8),
            stoneVersion=rng.choice(["other", "v1", "v2"]),
            platformType=rng.choice([1, 2]),
            screenSize=f"{rng.choice([720, 1080, 1440])}*{rng.choice([1280, 1440, 1920, 2560])}",
            deviceName=rng.choice(["TECNO-BB4k", "SAMSUNG-A10", "infinix-x", "Xiaomi-9"]) + str(i),
        )
        records.append(record)
    return records


Derive = Callable[[Mapping[str, Any]], dict[str, Any]]


def fitted_transformer(seed: int = 0, derive: Derive = ctr.derive) -> Any:
    rows = [derive(r) for r in synthetic_records(400, seed)]
    return ctr.build_transformer().fit(pd.DataFrame(rows))


def feature_width(transformer: Any, derive: Derive = ctr.derive) -> int:
    return int(transformer.transform(pd.DataFrame([derive(ctr.EXAMPLE_REQUEST)])).shape[1])


def signatures(width: int) -> dict[str, Any]:
    return {
        "serving_default": {
            "method_name": "tensorflow/serving/predict",
            "inputs": {
                SIGNATURE_INPUT: {
                    "dtype": "DT_FLOAT",
                    "shape": [-1, width],
                    "tensor_name": "serving_default_features:0",
                }
            },
            "outputs": {
                "score": {
                    "dtype": "DT_FLOAT",
                    "shape": [-1, 1],
                    "tensor_name": "StatefulPartitionedCall:0",
                }
            },
        }
    }


def write_assets(
    version_dir: Path,
    name: str,
    version: int,
    transformer: Any,
    *,
    schema: dict[str, Any] | None = None,
    trusted: list[str] | None = None,
    function: str = ctr.FUNCTION_PATH,
    derive: Derive = ctr.derive,
    api_version: str | None = None,
    code: bytes | None = None,
    example: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write assets.extra/features.skops and tierkit.json; answer the manifest.

    Called after the SavedModel is in ``version_dir``, so ``files`` lists it as export does.
    ``api_version`` None leaves the key out, as manifests written before API versions did.
    ``code``: feature code that travels with the version (``assets.extra/features.py``,
    its ``derive``), as ``export --feature-module`` writes it; ``example``: the
    manifest's ``example_request``, run by the logic tier when it loads the version.
    """
    extra = version_dir / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    data = skops.io.dumps(transformer)
    (extra / "features.skops").write_bytes(data)
    manifest = {
        "format": "tierkit.manifest/1",
        "name": name,
        "version": version,
        "created": "2026-11-22T10:00:00Z",
        "tool": {"name": "tierkit-tests", "version": "0"},
        "source": {"kind": "test", "path": "-", "sha256": "0" * 64},
        "signatures": signatures(feature_width(transformer, derive)),
        "input_schema": schema if schema is not None else ctr.INPUT_SCHEMA,
        "features": {
            "function": function,
            "transformer": "features.skops",
            "format": "skops",
            "sha256": hashlib.sha256(data).hexdigest(),
            "trusted_types": trusted
            if trusted is not None
            else skops.io.get_untrusted_types(data=data),
            "signature_input": SIGNATURE_INPUT,
        },
        "files": saved_model_files(version_dir),
        "parity": None,
        "warmup": None,
    }
    if api_version is not None:
        manifest["api_version"] = api_version
    if code is not None:
        (extra / "features.py").write_bytes(code)
        manifest["features"]["function"] = "derive"
        manifest["features"]["code"] = {
            "file": "features.py",
            "sha256": hashlib.sha256(code).hexdigest(),
        }
    if example is not None:
        manifest["example_request"] = example
    (extra / "tierkit.json").write_text(json.dumps(manifest, indent=2))
    return manifest
