"""Server-side batching through the real server: ``--enable_batching`` end to end.

A private ``python -m graph_service`` (module-scoped) serves half_plus_two
(y = 0.5 x + 2) with a batching parameters file; concurrent gRPC and REST callers
send distinct rows and must each get exactly their own answers, while the
server's own batch-size metric shows the calls were merged.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from support.graph_tier import GraphServer, model_states, run_graph_cli, start_graph_server
from support.model_zoo import publish_version
from support.waiting import wait_for
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MAX_BATCH = 8
BATCHING = f"""
max_batch_size {{ value: {MAX_BATCH} }}
batch_timeout_micros {{ value: 20000 }}
max_enqueued_batches {{ value: 1000 }}
num_batch_threads {{ value: 1 }}
allowed_batch_sizes: [2, 4, {MAX_BATCH}]
"""


@pytest.fixture(scope="module")
def batching_server(model_zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphServer]:
    workdir = tmp_path_factory.mktemp("batching_server")
    repo = workdir / "models"
    shutil.copytree(model_zoo.originals / "half_plus_two_b2", repo / "half_plus_two" / "1")
    params = workdir / "batching_parameters.txt"
    params.write_text(BATCHING)
    config = f"""
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{repo / "half_plus_two"}"
    model_platform: "tensorflow"
  }}
}}
"""
    server = start_graph_server(
        workdir,
        repo,
        config,
        "--enable_batching",
        f"--batching_parameters_file={params}",
        wait_models=["half_plus_two"],
    )
    yield server
    server.stop()


def xs_for(caller: int) -> np.ndarray:
    """1-3 rows per caller, values unique to the caller."""
    rows = 1 + caller % 3
    return (caller * 10 + np.arange(rows, dtype=np.float32)).reshape(rows, 1)


async def predict_own_rows(stub, caller: int) -> predict_pb2.PredictResponse:
    """Predict ``xs_for(caller)`` over gRPC and check the answer is the caller's own rows."""
    import tensorflow as tf

    xs = xs_for(caller)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(xs))
    response = await stub.Predict(request, timeout=60)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), xs * 0.5 + 2)
    return response


def batch_histogram(server: GraphServer) -> tuple[float, float]:
    """(number of batched graph calls, rows in them) from the server's Prometheus text."""
    text = httpx.get(server.rest_url + server.metrics_path, timeout=30).text
    count = sum(
        float(v) for v in re.findall(r"^tfserving_batch_size_count\{.*\} (\S+)$", text, re.M)
    )
    rows = sum(float(v) for v in re.findall(r"^tfserving_batch_size_sum\{.*\} (\S+)$", text, re.M))
    return count, rows


def test_concurrent_grpc_callers_each_get_their_own_rows(batching_server: GraphServer) -> None:
    callers = 96
    calls_before, rows_before = batch_histogram(batching_server)

    async def main() -> None:
        async with grpc.aio.insecure_channel(batching_server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            async def call(caller: int) -> None:
                response = await predict_own_rows(stub, caller)
                assert response.model_spec.version.value == 1
                assert response.model_spec.signature_name == "serving_default"

            await asyncio.gather(*(call(i) for i in range(callers)))

    asyncio.run(main())
    calls, rows = batch_histogram(batching_server)
    total_rows = sum(xs_for(i).shape[0] for i in range(callers))
    assert rows - rows_before >= total_rows  # allowed_batch_sizes padding may add rows
    assert calls - calls_before < callers  # merged into fewer graph calls than requests


def test_concurrent_rest_callers_each_get_their_own_rows(batching_server: GraphServer) -> None:
    callers = 48
    calls_before, _ = batch_histogram(batching_server)

    async def main() -> None:
        limits = httpx.Limits(max_connections=callers)
        async with httpx.AsyncClient(base_url=batching_server.rest_url, limits=limits) as client:

            async def call(caller: int) -> None:
                xs = xs_for(caller)
                answer = await client.post(
                    "/v1/models/half_plus_two:predict",
                    json={"instances": xs.tolist()},
                    timeout=60,
                )
                assert answer.status_code == 200, answer.text
                np.testing.assert_allclose(answer.json()["predictions"], xs * 0.5 + 2)

            await asyncio.gather(*(call(i) for i in range(callers)))

    asyncio.run(main())
    calls, _ = batch_histogram(batching_server)
    assert 0 < calls - calls_before < callers


def test_request_larger_than_max_batch_size_is_refused(batching_server: GraphServer) -> None:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((MAX_BATCH + 1, 1), np.float32)))
    with grpc.insecure_channel(batching_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        f"Task size {MAX_BATCH + 1} is larger than maximum input batch size {MAX_BATCH}"
    )
    answer = httpx.post(
        batching_server.rest_url + "/v1/models/half_plus_two:predict",
        json={"instances": [[0.0]] * (MAX_BATCH + 1)},
        timeout=60,
    )
    assert answer.status_code == 400
    assert "larger than maximum input batch size" in answer.json()["error"]


def test_a_new_version_takes_over_batching_without_a_failed_request(
    batching_server: GraphServer, model_zoo
) -> None:
    # Batch queues are found per version (server_core.py keeps them by servable):
    # while version 2 is published and version 1 unloads, callers keep coming;
    # every one gets its own rows, and afterwards batches run on version 2 only.
    served: list[int] = []
    failures: list[str] = []

    async def main() -> None:
        async with grpc.aio.insecure_channel(batching_server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            async def call(caller: int) -> int:
                try:
                    response = await predict_own_rows(stub, caller)
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
                    return 0
                return response.model_spec.version.value

            async def callers_until(done) -> None:
                round_ = 0
                while not done():
                    served.extend(await asyncio.gather(*(call(round_ * 8 + i) for i in range(8))))
                    round_ += 1

            def swapped() -> bool:
                return model_states(batching_server.grpc_target, "half_plus_two") == {
                    2: "AVAILABLE",
                    1: "END",
                }

            publish_version(
                model_zoo.originals / "half_plus_two_b2", batching_server.repo / "half_plus_two", 2
            )
            await asyncio.wait_for(callers_until(swapped), timeout=120)
            after = await asyncio.gather(*(call(1000 + i) for i in range(16)))
            assert after == [2] * 16

    asyncio.run(main())
    assert not failures
    assert set(served) <= {1, 2}


def test_a_bad_batching_file_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_sise { value: 8 }\n")
    done = run_graph_cli(
        "--port=0",
        "--model_name=m",
        f"--model_base_path={tmp_path / 'm'}",
        "--enable_batching",
        f"--batching_parameters_file={params}",
        timeout=60,
    )
    assert done.returncode != 0
    assert 'has no field named "max_batch_sise"' in done.stderr
    assert str(params) in done.stderr


SLOW_BATCHING = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
"""
HOLD_S = 2.0  # the first batch keeps the one batch thread this long
QUEUED_WOULD_TAKE_S = 8.0  # what the abandoned batch would cost if it ran
QUEUED_DEADLINE_S = 0.3


def _slow_request(seconds: float) -> predict_pb2.PredictRequest:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.array([seconds])))
    return request


def test_callers_that_gave_up_in_the_queue_cost_no_graph_run(model_zoo, tmp_path_factory) -> None:
    # One batch thread, held by a 2 s batch; two callers with a 0.3 s deadline queue
    # behind it asking for 8 s each. They time out in the queue, so their batch is
    # never run: the next caller is answered right after the first batch, and the
    # server's batch-size histogram counts two batches, not three.
    workdir = tmp_path_factory.mktemp("batching_abandoned")
    params = workdir / "batching_parameters.txt"
    params.write_text(SLOW_BATCHING)
    config = f"""
model_config_list {{
  config {{ name: "slow" base_path: "{model_zoo.repo / "slow"}" model_platform: "tensorflow" }}
}}
"""
    server = start_graph_server(
        workdir,
        model_zoo.repo,
        config,
        "--enable_batching",
        f"--batching_parameters_file={params}",
        wait_models=["slow"],
    )
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            holding = stub.Predict.future(_slow_request(HOLD_S), timeout=60)
            wait_for(
                lambda: batch_histogram(server)[0] >= 1,
                interval=0.02,
                message="the first batch to start",
            )
            queued = [
                stub.Predict.future(_slow_request(QUEUED_WOULD_TAKE_S), timeout=QUEUED_DEADLINE_S)
                for _ in range(2)
            ]
            for call in queued:
                with pytest.raises(grpc.RpcError) as caught:
                    call.result()
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            holding.result()
            # Had the abandoned batch run, this call would wait 8 s behind it and
            # miss its deadline; nothing but the abandoned batch stands in its way.
            stub.Predict(_slow_request(0.0), timeout=QUEUED_WOULD_TAKE_S / 2)
        assert batch_histogram(server)[0] == 2
        runtime = re.findall(
            r"^tfserving_runtime_latency_seconds_sum\{.*\} (\S+)$",
            httpx.get(server.rest_url + server.metrics_path, timeout=30).text,
            re.M,
        )
        assert sum(float(v) for v in runtime) < QUEUED_WOULD_TAKE_S
    finally:
        server.stop()

