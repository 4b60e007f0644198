"""Every served model is documented where users look: the start banner and ``/openapi.json``.

``./scripts/up``'s runner over a model repository of two models (ctr with
feature processing, a plain tensor model): the banner prints a curl for each,
learned from the running logic tier (not from logic.yaml), and each curl
answers 200; ``/openapi.json`` has each model's own predict path with its
record schema, and a newly published version with another schema changes it.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
from support.ctr_versions import publish_tensor_model, publish_version
from support.waiting import wait_until

from logic_service.features import ctr

from .local_stack_run import BANNER_END, start_local_stack
from .stack import FIRST_VERSION, MODEL, TENSOR_MODEL

CAMPAIGN_SCHEMA = {
    **ctr.INPUT_SCHEMA,
    "required": [*ctr.INPUT_SCHEMA["required"], "campaign"],
    "properties": {**ctr.INPUT_SCHEMA["properties"], "campaign": {"type": "string"}},
    "examples": [ctr.EXAMPLE_REQUEST | {"campaign": "spring"}],
}


def _curls(banner: str) -> dict[str, tuple[str, Any]]:
    """{model: (url, body)} of every curl the banner prints."""
    found = {}
    for block in re.findall(r"curl -s .*?(?=\n\n)", banner, flags=re.S):
        words = shlex.split(block.replace("\\\n", " "))
        url = words[words.index("-X") + 2]
        found[url.split("/models/")[1].split("/")[0]] = (
            url,
            json.loads(words[words.index("-d") + 1]),
        )
    return found


def _record_schema(openapi: dict[str, Any], model: str) -> dict[str, Any]:
    operation = openapi["paths"][f"/v1/models/{model}/predict"]["post"]
    return operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]


def test_the_banner_and_openapi_show_every_served_model(stack_dir: Path, transformer: Any) -> None:
    repo = stack_dir / "docs-repo"
    publish_version(repo, MODEL, FIRST_VERSION, transformer, seed=1)
    publish_tensor_model(repo, TENSOR_MODEL, 1)
    config = stack_dir / "docs-models.config"
    config.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{m}" base_path: "{repo / m}" model_platform: "tensorflow" }}\n'
            for m in (MODEL, TENSOR_MODEL)
        )
        + "}\n"
    )
    up = start_local_stack(
        repo,
        stack_dir,
        "docs",
        models_config=config,
        models=f"[{{name: {MODEL}}}, {{name: {TENSOR_MODEL}}}]",
    )
    try:
        banner = up.wait_for_banner(150)
        curls = _curls(banner[: banner.index(BANNER_END)])
        assert sorted(curls) == sorted([MODEL, TENSOR_MODEL]), banner
        assert curls[MODEL][1] == ctr.EXAMPLE_REQUEST
        for model, (url, body) in curls.items():
            assert url == f"{up.url}/v1/models/{model}/predict"
            response = httpx.post(url, json=body, timeout=10)
            assert response.status_code == 200, (model, response.text)

        openapi = httpx.get(f"{up.url}/openapi.json", timeout=10).json()
        schema = _record_schema(openapi, MODEL)
        assert set(schema["properties"]) == set(ctr.INPUT_SCHEMA["properties"])
        assert schema["required"] == ctr.INPUT_SCHEMA["required"]
        ctr_op = openapi["paths"][f"/v1/models/{MODEL}/predict"]["post"]
        example = ctr_op["requestBody"]["content"]["application/json"]["examples"]["one record"]
        assert example["value"] == ctr.EXAMPLE_REQUEST
        answer = ctr_op["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["properties"]["prediction"]["properties"] == {"score": {"type": "number"}}
        assert set(_record_schema(openapi, TENSOR_MODEL)["properties"]) == {"x"}
        assert "/v1/models/{name}/predict" in openapi["paths"]  # the generic path stays

        publish_version(repo, MODEL, FIRST_VERSION + 1, transformer, seed=1, schema=CAMPAIGN_SCHEMA)

        def documented() -> dict[str, Any] | None:
            current = httpx.get(f"{up.url}/openapi.json", timeout=10).json()
            return current if "campaign" in _record_schema(current, MODEL)["properties"] else None

        openapi = wait_until(documented, 60, "the new version's schema in /openapi.json")
        operation = openapi["paths"][f"/v1/models/{MODEL}/predict"]["post"]
        assert f"as version {FIRST_VERSION + 1} defines them" in operation["description"]
        examples = operation["requestBody"]["content"]["application/json"]["examples"]
        assert examples["one record"]["value"]["campaign"] == "spring"
    finally:
        code, _ = up.interrupt(timeout=60)
    assert code == 0, up.text()
