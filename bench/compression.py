"""``python -m bench compression``: SavedModel vs float16 vs dynamic vs int8, measured.

For the demo model and a larger one (bench/compression_models.py), each
published by ``python -m export`` as a float SavedModel and with
``--quantize float16|dynamic|int8``:

- size on disk: the SavedModel's files (``assets.extra/`` aside) or ``model.tflite``;
- load time: the graph tier's own loaders in this process (``Servable.load``,
  ``TfLiteServable.load``), median of three;
- in-process rows/s at batch 1 and 64: one thread calling the loaded version's
  ``run`` in a loop (the graph tier's compute path, no network);
- graph tier: ``python -m graph_service --prefer_tflite_model=true`` serving the
  four versions (``all`` policy), one-row gRPC Predicts pinned to a version by
  closed-loop callers in a separate process (bench/load_client.py) at
  concurrency 1 and 16: requests/s, p50, p99;
- metric delta: the export's own ``--eval`` on held-out labelled rows (AUC).

Every served version's answer is checked against the in-process SavedModel
before it is measured. The report goes between markers in docs/compression.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.compression_models import (
    VERSIONS,
    BenchModel,
    demo_params,
    publish_versions,
    train_demo,
    train_large,
)
from bench.compression_report import DOCS, report
from bench.load_client import LoadGenerator, LoadSpec

LEVELS = (1, 16)
TOLERANCE = {1: 1e-5, 2: 1e-3, 3: 2e-2, 4: 5e-2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    parser.add_argument(
        "--in-process-seconds", type=float, default=2.0, help="seconds per in-process cell"
    )
    parser.add_argument("--docs", type=Path, help="write the report into this markdown file")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run's temporary directory")


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-compression-"))
    started, load_before = time.time(), os.getloadavg()
    cpu_before = machine.cpu_times()
    try:
        results = [_measure_model(m, args, workdir) for m in _models(workdir)]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    run_info = {
        "machine": machine.describe(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": machine.load_average(),
        "steal": machine.steal_share(cpu_before, machine.cpu_times()),
        "seconds": round(time.time() - started),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
    }
    markdown, data = report(results, run_info)
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    if args.docs:
        DOCS.write(args.docs, markdown)
        _say(f"wrote the report into {args.docs}")
    return 0


def _models(workdir: Path) -> list[BenchModel]:
    repo = workdir / "repo"
    _say("training the demo model (scripts/train_demo.py)")
    demo_files = train_demo(workdir)
    demo = publish_versions("ctr", demo_files, repo, demo_params(demo_files))
    _say("training the larger model")
    large_files, params = train_large(workdir)
    large = publish_versions("large", large_files, repo, params)
    return [demo, large]


def _measure_model(model: BenchModel, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    _say(f"{model.name}: sizes, load times and in-process throughput")
    rows = {v: _offline(model, v, args.in_process_seconds) for v in VERSIONS}
    reference = rows[1].pop("answer")
    for version in VERSIONS:
        if version != 1:
            answer = rows[version].pop("answer")
            assert np.allclose(answer, reference, atol=TOLERANCE[version]), (model.name, version)
        rows[version]["metric"] = _metric(model, version)
    _say(f"{model.name}: graph tier at concurrency {', '.join(map(str, LEVELS))}")
    served = _served(model, reference, args, workdir)
    for version in VERSIONS:
        rows[version]["served"] = served[version]
    return {"name": model.name, "params": model.params, "versions": rows}


def _size(model: BenchModel, version: int) -> int:
    directory = model.version_dir(version)
    if version != 1:
        return (directory / "model.tflite").stat().st_size
    return sum(
        p.stat().st_size
        for p in directory.rglob("*")
        if p.is_file() and "assets.extra" not in p.relative_to(directory).parts
    )


def _load(model: BenchModel, version: int):
    from graph_service.runtime.servable import Servable
    from graph_service.runtime.session_options import SessionOptions
    from graph_service.runtime.tflite_servable import TfLiteServable

    if version == 1:
        return Servable.load(model.name, 1, model.version_dir(1), SessionOptions())
    return TfLiteServable.load(model.name, version, model.version_dir(version), 1)


def _offline(model: BenchModel, version: int, seconds: float) -> dict[str, Any]:
    load_ms = []
    for _ in range(3):
        started = time.perf_counter()
        servable = _load(model, version)
        load_ms.append((time.perf_counter() - started) * 1000)
        servable.close()
    servable = _load(model, version)
    sample = model.sample()["features"]
    try:
        answer = servable.run("serving_default", {"features": sample}, ("score",))["score"]
        rates = {}
        for batch in (1, 64):
            rows = np.resize(sample, (batch, sample.shape[1])).astype(np.float32)
            rates[batch] = _rows_per_second(servable, rows, seconds)
    finally:
        servable.close()
    return {
        "bytes": _size(model, version),
        "load_ms": round(statistics.median(load_ms), 2),
        "rows_per_s": rates,
        "answer": answer,
    }


def _rows_per_second(servable, rows: np.ndarray, seconds: float) -> float:
    inputs, outputs = {"features": rows}, ("score",)
    for _ in range(50):
        servable.run("serving_default", inputs, outputs)
    calls, clock = 0, time.perf_counter
    started = clock()
    stop = started + seconds
    while clock() < stop:
        for _ in range(20):
            servable.run("serving_default", inputs, outputs)
        calls += 20
    return calls * len(rows) / (clock() - started)


def _metric(model: BenchModel, version: int) -> dict[str, Any] | None:
    if version == 1:
        return None
    manifest_path = model.version_dir(version) / "assets.extra" / "tierkit.json"
    manifest = json.loads(manifest_path.read_text())
    evaluation = manifest["compression"]["eval"]
    return {
        "metric": evaluation["metric"],
        "float": evaluation["float"][evaluation["metric"]],
        "quantized": evaluation["quantized"][evaluation["metric"]],
        "drop": evaluation["drop"],
        "rows": evaluation["rows"],
    }


def _served(model: BenchModel, reference: np.ndarray, args, workdir: Path) -> dict[int, Any]:
    from bench.graph_server import GraphServer

    config = workdir / f"{model.name}.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{model.name}" base_path: "{model.base}" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }\n'
    )
    server = GraphServer(
        [f"--model_config_file={config}", "--prefer_tflite_model=true"],
        workdir / f"{model.name}-server.log",
        model.name,
        expect_versions=tuple(VERSIONS),
    )
    loadgen = LoadGenerator()
    results: dict[int, Any] = {}
    try:
        for version in VERSIONS:
            _check_answer(server, model, version, reference)
            payload = _request(model, version)
            results[version] = {}
            for level in LEVELS:
                spec = LoadSpec(
                    "grpc",
                    "127.0.0.1",
                    server.grpc_port,
                    payload,
                    level,
                    args.warmup,
                    args.duration,
                )
                outcome = loadgen.run(spec)
                latencies = outcome.latencies * 1000
                results[version][level] = {
                    "requests_per_s": round(outcome.completed / outcome.duration, 1),
                    "p50_ms": round(float(np.percentile(latencies, 50)), 3),
                    "p99_ms": round(float(np.percentile(latencies, 99)), 3),
                    "errors": outcome.errors,
                }
    finally:
        loadgen.close()
        server.close()
    return results


def _request(model: BenchModel, version: int, rows: int = 1):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model.name
    request.model_spec.version.value = version
    features = model.sample()["features"][:rows]
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(features))
    return request.SerializeToString()


def _check_answer(server, model: BenchModel, version: int, reference: np.ndarray) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest.FromString(_request(model, version, rows=8))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    answer = stub.Predict(request, timeout=30)
    got = np.asarray(answer.outputs["score"].float_val, np.float32).reshape(reference.shape)
    if not np.allclose(got, reference, atol=TOLERANCE[version]):
        raise AssertionError(f"{model.name} v{version} answers {got.ravel()[:4]}")


def _say(message: str) -> None:
    print(f"[bench compression] {message}", flush=True)
