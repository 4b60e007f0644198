"""Running one chosen version on a request's body: validation, features, graph call, answer.

What the predict service does once routing picked a version, and what a
rollout's follow-ups (the holdout's control version, a shadow copy) do with
another one. ``VersionRunner.run`` and ``for_model`` are public so those
callers are handed a runner rather than reaching into the service. All
failures leave as ``ApiError``: the caller's mistakes as 4xx naming the field
and the rule, graph-tier trouble as 502/503/504.

A model output that is NaN or infinite never reaches the caller: JSON has no
such numbers (orjson writes ``null``), so the answer would be a 200 without a
score. It is 422 ``non_finite_output`` naming the record (docs/manifest.md says
why 422 and not 5xx), counted in ``tierkit_non_finite_outputs`` and logged with
the record's index, never its fields.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from logic_service.errors import ApiError
from logic_service.graph.client import (
    GraphBadAnswer,
    GraphClient,
    GraphRejected,
    GraphTimeout,
    GraphUnavailable,
)
from logic_service.inputs.feature_pipeline import RecordsRejected
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.routing.shadow import Runner
from logic_service.settings import LogicSettings
from logic_service.versions.artifacts import VersionArtifacts
from logic_service.versions.registry import ModelRegistry

log = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 10


def _problems(problems: list[str]) -> str:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


class VersionRunner:
    def __init__(
        self,
        settings: LogicSettings,
        registry: ModelRegistry,
        client: GraphClient,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.client = client
        self.metrics = metrics
        self._retry_after = {"Retry-After": str(settings.graph.retry_after_s)}

    def for_model(self, model: str) -> Runner:
        """``run`` by version number: what a rollout's holdout and shadow are handed."""

        async def run(version: int, body: Any, context: RequestContext) -> dict[str, Any]:
            artifacts = self.registry.artifacts(model, version)
            if artifacts is None:
                raise ApiError(503, f"{model}: version {version} is not loaded", "unavailable")
            return await self.run(artifacts, body, context)

        return run

    async def run(
        self, artifacts: VersionArtifacts, body: Any, context: RequestContext
    ) -> dict[str, Any]:
        """The answer of this version: records, validation, features, graph call, outputs."""
        model, version = artifacts.model, artifacts.version
        records, paths, batch = self._records(body, artifacts)

        started = time.perf_counter()
        problems = artifacts.validate(records, paths)
        if not problems and artifacts.validator is not None:
            # 35.0 where the schema says integer reaches the features as 35, what training saw
            records = [artifacts.validator.normalize(record) for record in records]
        spent = time.perf_counter() - started
        context.add("validate", spent)
        self.metrics.validation.labels(model, str(version)).observe(spent)
        if problems:
            raise ApiError(422, _problems(problems), "invalid_input")

        started = time.perf_counter()
        try:
            inputs = artifacts.inputs(records, paths)
        except RecordsRejected as exc:  # the feature function's, or tensors' (TensorRecordError)
            raise ApiError(422, _problems(exc.problems), "invalid_input") from exc
        finally:
            spent = time.perf_counter() - started
            context.add("features", spent)
            self.metrics.features.labels(model, str(version)).observe(spent)

        outputs = await self._call_graph(artifacts, inputs, context)
        predictions = self._predictions(outputs, paths, artifacts)
        answer: dict[str, Any] = {
            "request_id": context.request_id,
            "model": model,
            "version": version,
        }
        if batch:
            answer["predictions"] = predictions
        else:
            answer["prediction"] = predictions[0]
        return answer

    def _records(self, body: Any, artifacts: VersionArtifacts) -> tuple[list, list[str], bool]:
        declares_records = bool(
            artifacts.validator and "records" in artifacts.validator.schema.get("properties", {})
        )
        if isinstance(body, dict) and "records" in body and not declares_records:
            records = body["records"]
            if not isinstance(records, list):
                raise ApiError(422, "records: must be an array of records", "invalid_input")
            if not records:
                raise ApiError(422, "records: must hold at least one record", "invalid_input")
            limit = self.settings.limits.max_records
            if len(records) > limit:
                raise ApiError(
                    413,
                    f"records: {len(records)} records, at most {limit} per request",
                    "too_many_records",
                )
            return records, [f"records[{i}]" for i in range(len(records))], True
        if not isinstance(body, dict):
            raise ApiError(
                422,
                '<body>: must be one record (a JSON object) or {"records": [...]}',
                "invalid_input",
            )
        return [body], [""], False

    async def _call_graph(
        self, artifacts: VersionArtifacts, inputs: dict[str, np.ndarray], context: RequestContext
    ) -> dict[str, np.ndarray]:
        model, version = artifacts.model, artifacts.version
        timeout = self.settings.deadline_s(self.registry.settings_of(model))
        started = time.perf_counter()
        try:
            return await self.client.predict(
                model, version, artifacts.signature_name, inputs, artifacts.output_names, timeout
            )
        except GraphUnavailable as exc:
            raise ApiError(
                503, f"graph tier unavailable: {exc}", "graph_unavailable", self._retry_after
            ) from exc
        except GraphTimeout as exc:
            raise ApiError(
                504,
                f"graph tier exceeded the {timeout * 1000:.0f} ms deadline: {exc}",
                "graph_timeout",
            ) from exc
        except GraphRejected as exc:
            if artifacts.features is None:  # the caller's tensors: their mistake
                raise ApiError(422, f"the model refused the input: {exc}", "invalid_input") from exc
            raise ApiError(
                502, f"graph tier refused the feature tensor: {exc}", "bad_graph_answer"
            ) from exc
        except GraphBadAnswer as exc:
            raise ApiError(502, f"graph tier answer unusable: {exc}", "bad_graph_answer") from exc
        finally:
            spent = time.perf_counter() - started
            context.add("graph", spent)
            self.metrics.graph_call.labels(
                model, str(version), self.settings.graph.protocol
            ).observe(spent)

    def _predictions(
        self, outputs: dict[str, np.ndarray], paths: list[str], artifacts: VersionArtifacts
    ) -> list[dict[str, Any]]:
        count = len(paths)
        names = artifacts.output_names or sorted(outputs)
        missing = [n for n in names if n not in outputs]
        if missing:
            raise ApiError(502, f"graph tier answer lacks outputs {missing}", "bad_graph_answer")
        for name in names:
            array = outputs[name]
            if array.ndim == 0 or array.shape[0] != count:
                raise ApiError(
                    502,
                    f"graph tier output {name!r} has shape {list(array.shape)}, "
                    f"expected {count} rows",
                    "bad_graph_answer",
                )
        self._refuse_non_finite({n: outputs[n] for n in names}, paths, artifacts)
        return [{name: _value(outputs[name][i]) for name in names} for i in range(count)]

    def _refuse_non_finite(
        self, outputs: dict[str, np.ndarray], paths: list[str], artifacts: VersionArtifacts
    ) -> None:
        """422 ``non_finite_output`` naming each record whose outputs hold NaN or infinity."""
        found: dict[int, list[tuple[str, str]]] = {}  # row -> [(output, what it holds)]
        for name in sorted(outputs):
            array = outputs[name]
            if array.dtype.kind not in "fc":  # integers, strings, booleans are always finite
                continue
            rows = array.reshape(len(paths), -1)
            finite = np.isfinite(rows)
            if finite.all():
                continue
            self.metrics.non_finite_outputs.labels(
                artifacts.model, str(artifacts.version), name
            ).inc(int((~finite.all(axis=1)).sum()))
            for row in np.flatnonzero(~finite.all(axis=1)):
                first = rows[row][~finite[row]][0]
                found.setdefault(int(row), []).append((name, _non_finite_name(first)))
        if not found:
            return
        where = {row: paths[row] or "<record>" for row in found}
        log.warning(
            "model %s/%d: non-finite output for %s (the record's fields are not logged)",
            artifacts.model,
            artifacts.version,
            "; ".join(
                f"{where[row]}: " + ", ".join(f"{name} ({what})" for name, what in bad)
                for row, bad in sorted(found.items())
            ),
        )
        problems = [
            f"{where[row]}: the model's output "
            + ", ".join(
                f"{name!r} {'is' if outputs[name][row].size == 1 else 'holds'} {what}"
                for name, what in bad
            )
            + ", which JSON cannot carry: this version cannot score the record "
            "(a value outside what it was trained on?)"
            for row, bad in sorted(found.items())
        ]
        raise ApiError(422, _problems(problems), "non_finite_output")


def _non_finite_name(value: Any) -> str:
    """``nan``, ``inf`` or ``-inf`` (a complex value: its first non-finite part)."""
    if np.iscomplexobj(value):
        value = value.real if not np.isfinite(value.real) else value.imag
    return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def _value(row: Any) -> Any:
    """One example's output: [1]-shaped values become scalars; numpy stays numpy for orjson."""
    if isinstance(row, np.ndarray):
        if row.shape == (1,):
            row = row[0]
        elif row.dtype == object:
            return [_text(v) for v in row.reshape(-1).tolist()] if row.ndim == 1 else row.tolist()
        else:
            return np.ascontiguousarray(row)
    return _text(row) if isinstance(row, bytes | str) else row


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return {"b64": base64.b64encode(value).decode("ascii")}
    return value
