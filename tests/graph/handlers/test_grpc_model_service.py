"""ModelService.GetModelStatus (and the Unix socket listener) on the shared server."""

from __future__ import annotations

import grpc
import pytest
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope="module")
def model_service(graph_server):
    channel = grpc.insecure_channel(graph_server.grpc_target)
    yield model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def status(stub, name: str, version: int | None = None, label: str | None = None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return stub.GetModelStatus(request, timeout=10)


def test_all_versions_highest_first(model_service):
    result = status(model_service, "half_plus_two")
    assert [(s.version, s.state) for s in result.model_version_status] == [
        (2, State.AVAILABLE),
        (1, State.AVAILABLE),
    ]
    assert all(s.status.error_code == 0 for s in result.model_version_status)


def test_specific_version_and_label(model_service):
    by_version = status(model_service, "half_plus_two", version=1)
    assert [s.version for s in by_version.model_version_status] == [1]
    by_label = status(model_service, "half_plus_two", label="canary")
    assert [s.version for s in by_label.model_version_status] == [2]


def test_broken_version_reports_its_error_while_v1_serves(model_service):
    result = status(model_service, "broken")
    by_version = {s.version: s for s in result.model_version_status}
    assert by_version[1].state == State.AVAILABLE
    assert by_version[2].state == State.END
    # What TF's C++ loader (TF Serving's) reports for a truncated saved_model.pb.
    assert by_version[2].status.error_code == grpc.StatusCode.OUT_OF_RANGE.value[0]
    assert "saved_model.pb" in by_version[2].status.error_message


def test_unknown_model_and_version_messages(model_service):
    with pytest.raises(grpc.RpcError) as info:
        status(model_service, "nope")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find any versions of model nope"
    with pytest.raises(grpc.RpcError) as info:
        status(model_service, "half_plus_two", version=9)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find version 9 of model half_plus_two"
    with pytest.raises(grpc.RpcError) as info:
        status(model_service, "half_plus_two", label="nightly")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reload_rejects_non_list_config(model_service):
    request = model_management_pb2.ReloadConfigRequest()  # no model_config_list
    with pytest.raises(grpc.RpcError) as info:
        model_service.HandleReloadConfigRequest(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Only ModelConfigList is currently supported" in info.value.details()


def test_unix_socket_serves_the_same_apis(graph_server):
    with grpc.insecure_channel(f"unix:{graph_server.socket_path}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        result = status(stub, "tf2_multi")
    assert [(s.version, s.state) for s in result.model_version_status] == [(1, State.AVAILABLE)]
