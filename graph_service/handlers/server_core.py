"""ServerCore: the request APIs shared by gRPC and REST, over config and versions.

Like TF Serving's ServerCore, it ties the config (ConfigReloader: config file,
labels, directory polling, version policy) to the manager (loads, unloads,
handles), resolves a ``ModelSpec`` (name, version or label) to a loaded
version, and answers every API with TF Serving's status codes and messages. Both front
ends convert their wire format into the request protos and call these methods,
as TF Serving's HttpRestApiHandler calls the same code as its gRPC service.

Every public method raises only ``ServingError``; an unexpected exception
becomes INTERNAL with a short message and is logged with its traceback here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from graph_service.errors import ServingError, invalid_argument, not_found
from graph_service.handlers.observation import Calls, Observation, internal_error
from graph_service.handlers.session_runs import SessionRuns, time_left
from graph_service.inference.example_inference import (
    check_multi_inference,
    classification_result,
    model_spec,
    prepare_classify,
    prepare_multi_inference,
    prepare_regress,
    regression_result,
    run_multi_inference,
)
from graph_service.inference.prediction import (
    PreparedRun,
    finish_predict,
    predict_signature,
    prepare_predict,
    signature_name_of,
)
from graph_service.monitoring import Metrics
from graph_service.runtime.run_placement import DEFAULT_BUDGET_S, RunPlacement
from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions
from graph_service.serving.config_reloader import ConfigReloader
from graph_service.serving.handle import ServableHandle
from graph_service.serving.loader import VersionLoader
from graph_service.serving.manager import Manager
from graph_service.serving.server_config import ModelServerConfig
from graph_service.serving.version_state import State

if TYPE_CHECKING:
    pass

log = logging.getLogger("graph_service")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ResolvedSignature:
    model_name: str
    version: int
    signature_name: str
    signature_def: meta_graph_pb2.SignatureDef


@dataclass(frozen=True)
class CoreOptions:
    """The part of the flags ServerCore needs (one typed object)."""

    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    max_num_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    session: SessionOptions = field(default_factory=SessionOptions)
    enable_signature_method_name_check: bool = False
    # Cancel a session run at the caller's deadline (TF Serving's flag of that name).
    enforce_session_run_timeout: bool = True
    request_threads: int = 8
    # Runs proven shorter than this execute on the event loop (run_placement.py);
    # 0 sends every run to the pool.
    loop_run_budget_s: float = DEFAULT_BUDGET_S
    # Wait this long for new models to load before a reload answers (TF Serving
    # waits forever; a bound keeps a reload RPC from hanging on a bad path).
    reload_wait_seconds: float = 600.0
    # While a version loads, its threads get one core and serving the rest (load_cores.py).
    split_cores_for_loads: bool = True
    # Pool threads started later are batch-class too (helper_threads.py).
    batch_class_helper_threads: bool = True
    # Serve a version's model.tflite when it has one (runtime/tflite_servable.py),
    # with at most this many interpreters per version.
    prefer_tflite_model: bool = False
    tflite_pool_size: int = 1


class ServerCore:
    """Config + source + manager + the request APIs."""

    def __init__(self, options: CoreOptions, metrics: Metrics | None = None, batcher=None) -> None:
        self.options = options
        self.metrics = metrics
        placement = RunPlacement(options.loop_run_budget_s)  # loads admit to it
        self._runs = SessionRuns(
            placement,
            metrics,
            batcher,
            request_threads=options.request_threads,
            batch_class_helper_threads=options.batch_class_helper_threads,
            enforce_session_run_timeout=options.enforce_session_run_timeout,
        )
        # The calls in flight and their metrics, shared by every Observation.
        self._calls = calls = Calls(metrics)
        self._loader = VersionLoader(
            options.session,
            placement,
            busy=lambda: calls.in_flight > 0,
            enable_model_warmup=options.enable_model_warmup,
            num_request_iterations_for_warmup=options.num_request_iterations_for_warmup,
            split_cores_for_loads=options.split_cores_for_loads,
            prefer_tflite_model=options.prefer_tflite_model,
            tflite_pool_size=options.tflite_pool_size,
        )
        self.manager = Manager(
            self._loader.load,
            max_load_retries=options.max_num_load_retries,
            load_retry_interval_s=options.load_retry_interval_s,
            listener=self._on_servable_event,
        )
        self.configs = ConfigReloader(
            self.manager,
            file_system_poll_wait_seconds=options.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=(
                options.allow_version_labels_for_unavailable_models
            ),
            reload_wait_seconds=options.reload_wait_seconds,
        )

    # ================================================================ lifecycle
    def start(self, config: ModelServerConfig, initial_wait_seconds: float = 600.0) -> None:
        """Apply the first config and wait for its models' first loads (as TF Serving)."""
        self._loader.prepare_runtime()  # before any low-priority load
        self.manager.start()
        self.configs.start(config, initial_wait_seconds)

    def close(self) -> None:
        self.configs.stop()
        self.manager.stop()
        self._runs.close()
        self._loader.close()

    def apply_config(self, config: ModelServerConfig) -> None:
        """ReloadConfig; raises ServingError (previous config kept) when refused."""
        self.configs.apply(config)

    # ================================================================== events
    def _on_servable_event(
        self, name: str, version: int, event: str, seconds: float, error: ServingError | None
    ) -> None:
        if event == "unloaded":
            self._runs.close_queues(name, version)
        if self.metrics is None:
            return
        if event == "unloaded":
            self.metrics.observe_unload(name)
        else:
            self.metrics.observe_load(name, "OK" if error is None else error.code.name, seconds)
        self.metrics.set_available(name, len(self.manager.available_versions(name)))

    # ================================================================ resolution
    def _version_for(self, spec: model_pb2.ModelSpec) -> int | None:
        """ServerCore::ServableRequestFromModelSpec: None means the latest version."""
        if not spec.name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.version.value
        if choice == "version_label":
            return self.configs.label_version(spec.name, spec.version_label)
        return None

    def _acquire(self, spec: model_pb2.ModelSpec) -> ServableHandle:
        return self.manager.acquire(spec.name, self._version_for(spec))

    def resolve_signature(self, model_spec: model_pb2.ModelSpec) -> ResolvedSignature:
        """Which version and SignatureDef a Predict with this spec would use."""
        try:
            with self._acquire(model_spec) as servable:
                name = signature_name_of(model_spec.signature_name)
                signature = predict_signature(servable, name)
                copy = meta_graph_pb2.SignatureDef()
                copy.CopyFrom(signature)
                return ResolvedSignature(servable.name, servable.version, name, copy)
        except ServingError:
            raise
        except Exception as exc:
            raise internal_error("resolve_signature", exc) from None

    # ================================================================= requests
    async def _observe(
        self, api: str, spec: model_pb2.ModelSpec, call: Callable[[Observation], Awaitable[T]]
    ) -> T:
        """Run one API call: metrics, and nothing but ServingError escapes."""
        with Observation(self._calls, api, spec.name) as observed:
            return await call(observed)

    async def _serve_one(
        self,
        api: str,
        spec: model_pb2.ModelSpec,
        prepare: Callable[[Servable, R], PreparedRun],
        request: R,
        finish: Callable[[Servable, PreparedRun, dict], T],
    ) -> T:
        """One signature run on one version: acquire, prepare, run, answer, observe.

        Written flat (no closure, no coroutine per stage): this is every Predict,
        Classify and Regress, and each layer was a measurable share of the loop's
        time per request.
        """
        with Observation(self._calls, api, spec.name) as observed, self._acquire(spec) as servable:
            observed.version = servable.version
            prepared = prepare(servable, request)
            outputs = await self._runs.run(servable, prepared)
            return finish(servable, prepared, outputs)

    async def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        return await self._serve_one(
            "Predict", request.model_spec, prepare_predict, request, finish_predict
        )

    async def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        strict = self.options.enable_signature_method_name_check
        return await self._serve_one(
            "Classify",
            request.model_spec,
            lambda servable, request: prepare_classify(servable, request, strict),
            request,
            lambda servable, prepared, outputs: classification_pb2.ClassificationResponse(
                result=classification_result(prepared, outputs),
                model_spec=model_spec(servable, prepared.signature_name),
            ),
        )

    async def regress(
        self, request: regression_pb2.RegressionRequest
    ) -> regression_pb2.RegressionResponse:
        strict = self.options.enable_signature_method_name_check
        return await self._serve_one(
            "Regress",
            request.model_spec,
            lambda servable, request: prepare_regress(servable, request, strict),
            request,
            lambda servable, prepared, outputs: regression_pb2.RegressionResponse(
                result=regression_result(prepared, outputs),
                model_spec=model_spec(servable, prepared.signature_name),
            ),
        )

    async def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        strict = self.options.enable_signature_method_name_check
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()

        async def call(observed: Observation) -> inference_pb2.MultiInferenceResponse:
            _, first_spec = check_multi_inference(request)
            with self._acquire(first_spec) as servable:
                observed.version = servable.version
                prepared, tasks = prepare_multi_inference(servable, request, strict)
                loop = asyncio.get_running_loop()
                deadline = self._runs.deadline()

                def run() -> inference_pb2.MultiInferenceResponse:
                    timeout = time_left(deadline)
                    return run_multi_inference(servable, prepared, tasks, timeout_s=timeout)

                return await loop.run_in_executor(self._runs.executor, run)

        return await self._observe("MultiInference", spec, call)

    async def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def call(observed: Observation) -> get_model_metadata_pb2.GetModelMetadataResponse:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            if not request.metadata_field:
                raise invalid_argument(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for field_name in request.metadata_field:
                if field_name != "signature_def":
                    raise invalid_argument(f"Metadata field {field_name} is not supported")
            with self._acquire(request.model_spec) as servable:
                observed.version = servable.version
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = servable.name
                response.model_spec.version.value = servable.version
                signature_map = get_model_metadata_pb2.SignatureDefMap()
                for key, signature in servable.signatures.items():
                    signature_map.signature_def[key].CopyFrom(signature)
                response.metadata["signature_def"].Pack(signature_map)
                return response

        return await self._observe("GetModelMetadata", request.model_spec, call)

    async def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def call(observed: Observation) -> get_model_status_pb2.GetModelStatusResponse:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            spec = request.model_spec
            name = spec.name
            statuses = self.manager.statuses(name)
            choice = spec.WhichOneof("version_choice")
            if choice is not None:
                version = (
                    self.configs.label_version(name, spec.version_label)
                    if choice == "version_label"
                    else spec.version.value
                )
                statuses = [s for s in statuses if s.version == version]
                if not statuses:
                    raise not_found(f"Could not find version {version} of model {name}")
            elif not statuses:
                raise not_found(f"Could not find any versions of model {name}")
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                entry = response.model_version_status.add()
                entry.version = status.version
                entry.state = int(status.state)
                # As ServerCore: status is always set, error_code OK for a healthy version.
                entry.status.SetInParent()
                if status.error is not None:
                    entry.status.error_code = status.error.code.value[0]
                    entry.status.error_message = status.error.message
            return response

        return await self._observe("GetModelStatus", request.model_spec, call)

    async def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        """ModelService.HandleReloadConfigRequest: blocks until new models loaded (as TF)."""
        if request.config.WhichOneof("config") != "model_config_list":
            raise invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.configs.apply, request.config)
        except ServingError as exc:
            log.error("ReloadConfig failed: %s", exc.message)
            raise
        except Exception as exc:
            raise internal_error("HandleReloadConfigRequest", exc) from None
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


__all__ = ["CoreOptions", "ResolvedSignature", "ServerCore", "State"]
