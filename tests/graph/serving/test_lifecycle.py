"""Version lifecycle on a private server: policies, hot add/remove, broken versions,
in-flight requests during unload, config reloads (file poll and RPC).

These tests change their repository and config, so they run against their own
server (module scope), never the shared ``graph_server``.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from support.graph_tier import model_states, start_graph_server
from support.model_zoo import corrupt_saved_model, publish_version
from support.waiting import wait_for
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

STATUS = get_model_status_pb2.ModelVersionStatus.State


@dataclass
class Model:
    name: str
    policy: str = ""
    labels: dict[str, int] = field(default_factory=dict)


def config_text(repo: Path, models: list[Model]) -> str:
    parts = ["model_config_list {"]
    for model in models:
        parts.append(
            f'  config {{ name: "{model.name}" base_path: "{repo / model.name}" '
            f'model_platform: "tensorflow" {model.policy}'
        )
        for label, version in model.labels.items():
            parts.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        parts.append("  }")
    parts.append("}")
    return "\n".join(parts) + "\n"


BASE_MODELS = [
    Model("hot"),
    Model("slow"),
    Model("pinned", "model_version_policy { specific { versions: 1 } }"),
    Model("window", "model_version_policy { latest { num_versions: 2 } }"),
]


@pytest.fixture(scope="module")
def lifecycle(model_zoo, tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    repo = root / "models"
    originals = model_zoo.originals
    layout = {
        ("hot", 1): "half_plus_two_b2",
        ("slow", 1): "slow_a",
        ("pinned", 1): "half_plus_two_b2",
        ("pinned", 2): "half_plus_two_b3",
        ("window", 1): "half_plus_two_b2",
        ("window", 2): "half_plus_two_b2",
        ("window", 3): "half_plus_two_b3",
    }
    for (name, version), original in layout.items():
        shutil.copytree(originals / original, repo / name / str(version))
    server = start_graph_server(
        root / "server",
        repo,
        config_text(repo, BASE_MODELS),
        wait_models=[m.name for m in BASE_MODELS],
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stubs(lifecycle):
    channel = grpc.insecure_channel(lifecycle.grpc_target)
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def half_plus_request(name: str, x: float = 2.0, **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[x]], dtype=tf.float32))
    return request


class LoadLoop:
    """Keeps sending Predict to a model; records versions served and any failure."""

    def __init__(self, stub, name: str) -> None:
        self.stub, self.name = stub, name
        self.versions: set[int] = set()
        self.errors: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.stub.Predict(half_plus_request(self.name), timeout=10)
                self.versions.add(result.model_spec.version.value)
                self.count += 1
            except grpc.RpcError as exc:
                self.errors.append(f"{exc.code()}: {exc.details()}")

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_specific_and_latest_n_policies(lifecycle):
    assert model_states(lifecycle.grpc_target, "pinned") == {1: "AVAILABLE"}
    assert model_states(lifecycle.grpc_target, "window") == {3: "AVAILABLE", 2: "AVAILABLE"}


def test_hot_add_broken_and_remove_versions_without_failed_requests(lifecycle, stubs, model_zoo):
    prediction, model_service = stubs
    target, model_dir = lifecycle.grpc_target, lifecycle.repo / "hot"
    with LoadLoop(prediction, "hot") as load:
        # A new version appears atomically: loaded, then the old one unloaded.
        publish_version(model_zoo.originals / "half_plus_two_b3", model_dir, 2)
        wait_for(
            lambda: model_states(target, "hot") == {2: "AVAILABLE", 1: "END"},
            message="hot v2 to replace v1",
        )
        result = prediction.Predict(half_plus_request("hot", x=4.0), timeout=10)
        assert result.model_spec.version.value == 2
        assert list(result.outputs["y"].float_val) == [5.0]

        # A broken newer version: reported with its error, v2 keeps serving.
        broken = lifecycle.repo / "hot-broken-src"
        shutil.copytree(model_zoo.originals / "half_plus_two_b2", broken)
        corrupt_saved_model(broken)
        publish_version(broken, model_dir, 3)
        wait_for(lambda: model_states(target, "hot").get(3) == "END", message="hot v3 to fail")
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "hot"
        request.model_spec.version.value = 3
        failed = model_service.GetModelStatus(request, timeout=10).model_version_status[0]
        # What TF's C++ loader (TF Serving's) reports for a truncated saved_model.pb.
        assert failed.status.error_code == grpc.StatusCode.OUT_OF_RANGE.value[0]
        assert "saved_model.pb" in failed.status.error_message
        assert model_states(target, "hot")[2] == "AVAILABLE"
        result = prediction.Predict(half_plus_request("hot"), timeout=10)
        assert result.model_spec.version.value == 2

        # Versions removed from disk: latest is v1 again, v2 goes away.
        shutil.rmtree(model_dir / "3")
        shutil.rmtree(model_dir / "2")
        wait_for(
            lambda: (
                model_states(target, "hot").get(1) == "AVAILABLE"
                and model_states(target, "hot").get(2) == "END"
            ),
            message="hot back to v1",
        )
        wait_for(lambda: load.versions >= {1, 2} and load.count > 20, message="traffic")
    assert load.errors == []
    result = prediction.Predict(half_plus_request("hot", x=4.0), timeout=10)
    assert result.model_spec.version.value == 1
    assert list(result.outputs["y"].float_val) == [4.0]


def test_in_flight_request_finishes_on_the_unloading_version(lifecycle, stubs, model_zoo):
    prediction, _ = stubs
    outcome: dict[str, object] = {}

    def slow_call() -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "slow"
        request.model_spec.version.value = 1
        request.inputs["seconds"].CopyFrom(tf.make_tensor_proto([4.0], dtype=tf.float64))
        try:
            outcome["response"] = prediction.Predict(request, timeout=60)
        except grpc.RpcError as exc:
            outcome["error"] = f"{exc.code()}: {exc.details()}"

    caller = threading.Thread(target=slow_call)
    caller.start()
    threading.Event().wait(1.0)  # let the request reach the server before v2 appears
    publish_version(model_zoo.originals / "slow_b", lifecycle.repo / "slow", 2)
    wait_for(
        lambda: (
            "Unloading {name: slow version: 1}: waiting for 1 request(s) in flight"
            in lifecycle.log_text()
        ),
        message="the unload of slow v1 to wait for the request in flight",
    )
    caller.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    response = outcome["response"]
    assert response.model_spec.version.value == 1
    assert list(response.outputs["tag"].string_val) == [b"a"]
    wait_for(
        lambda: model_states(lifecycle.grpc_target, "slow") == {2: "AVAILABLE", 1: "END"},
        message="slow v1 to end after its last request",
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["seconds"].CopyFrom(tf.make_tensor_proto([0.0], dtype=tf.float64))
    assert list(prediction.Predict(request, timeout=10).outputs["tag"].string_val) == [b"b"]


def test_config_file_reload_adds_and_removes_models(lifecycle, stubs, model_zoo):
    prediction, _ = stubs
    shutil.copytree(model_zoo.originals / "tf2_multi", lifecycle.repo / "added" / "5")
    models = [m for m in BASE_MODELS if m.name != "pinned"] + [Model("added")]
    lifecycle.config_path.write_text(config_text(lifecycle.repo, models))
    wait_for(
        lambda: model_states(lifecycle.grpc_target, "added") == {5: "AVAILABLE"},
        message="model 'added' to load after the config file changed",
    )
    wait_for(
        lambda: set(model_states(lifecycle.grpc_target, "pinned").values()) == {"END"},
        message="model 'pinned' to be unloaded",
    )
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(half_plus_request("pinned"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "added"
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(np.ones((1, 2), np.float32)))
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
    assert prediction.Predict(request, timeout=10).model_spec.version.value == 5


def test_broken_config_file_keeps_the_models_serving(lifecycle, stubs):
    prediction, _ = stubs
    good = lifecycle.config_path.read_text()
    lifecycle.config_path.write_text("model_config_list { config { name: 'x' ")
    try:
        wait_for(
            lambda: "Keeping the current models; Invalid protobuf file" in lifecycle.log_text(),
            message="the broken config file to be reported",
        )
        result = prediction.Predict(half_plus_request("window"), timeout=10)
        assert result.model_spec.version.value == 3
    finally:
        lifecycle.config_path.write_text(good)


def reload_request(repo: Path, models: list[Model]) -> model_management_pb2.ReloadConfigRequest:
    from google.protobuf import text_format

    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(config_text(repo, models), request.config)
    return request


def test_reload_rpc_sets_labels_and_rejects_bad_configs(lifecycle, stubs):
    prediction, model_service = stubs
    repo = lifecycle.repo
    current = [m for m in BASE_MODELS if m.name != "window"]
    labelled = Model("window", BASE_MODELS[3].policy, {"stable": 2, "newest": 3})
    response = model_service.HandleReloadConfigRequest(
        reload_request(repo, [*current, labelled]), timeout=60
    )
    assert response.status.error_code == 0
    result = prediction.Predict(half_plus_request("window", version_label="stable"), timeout=10)
    assert result.model_spec.version.value == 2

    duplicate = model_management_pb2.ReloadConfigRequest()
    duplicate.CopyFrom(reload_request(repo, [*current, labelled, Model("window")]))
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(duplicate, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Illegal to list model window multiple times in config list"

    moved = Model("window", BASE_MODELS[3].policy, {"stable": 1, "newest": 3})
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(reload_request(repo, [*current, moved]), timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "Request to assign label to version 1 of model window, which is not currently "
        "available for inference"
    )
    # The rejected reloads changed nothing.
    result = prediction.Predict(half_plus_request("window", version_label="stable"), timeout=10)
    assert result.model_spec.version.value == 2


def test_reload_rpc_reports_a_new_model_that_cannot_load(lifecycle, stubs):
    _, model_service = stubs
    missing = Model("ghost")
    request = reload_request(lifecycle.repo, [*BASE_MODELS, missing])
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details().startswith("1 model(s) did not become available")
    assert "ghost" in info.value.details()
