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
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
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

from graph_service.cpu import heap_freeze
from graph_service.cpu.helper_threads import batch_class_this_thread
from graph_service.cpu.load_cores import LoadCores
from graph_service.cpu.load_pacing import Pacer
from graph_service.cpu.low_priority import LowPriorityWorker
from graph_service.cpu.thread_names import name_os_thread
from graph_service.errors import ServingError, invalid_argument, not_found
from graph_service.handlers.request_deadline import current_deadline
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
from graph_service.inference.warmup import replay_warmup
from graph_service.monitoring import Metrics
from graph_service.runtime.run_placement import DEFAULT_BUDGET_S, RunPlacement, numeric_elements
from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions
from graph_service.serving.config_reloader import ConfigReloader
from graph_service.serving.handle import ServableHandle
from graph_service.serving.manager import Manager
from graph_service.serving.server_config import ModelServerConfig
from graph_service.serving.version_state import State

if TYPE_CHECKING:
    from graph_service.batching.batcher import BatchQueue

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


class ServerCore:
    """Config + source + manager + the request APIs."""

    def __init__(self, options: CoreOptions, metrics: Metrics | None = None, batcher=None) -> None:
        self.options = options
        self.metrics = metrics
        self._batcher = batcher
        self._executor = ThreadPoolExecutor(
            max_workers=max(options.request_threads, 1),
            thread_name_prefix="graph-run",
            initializer=_start_helper if options.batch_class_helper_threads else name_os_thread,
        )
        self._placement = RunPlacement(options.loop_run_budget_s)  # loads admit to it
        self.manager = Manager(
            self._load_servable,
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
        # Batch queues by (servable, signature, input aliases, outputs): see _open_queue.
        self._queues: dict[tuple, BatchQueue] = {}
        self._queues_lock = threading.Lock()
        # Loads' C++ work runs here so serving threads win the CPU (low_priority.py).
        self._load_worker = LowPriorityWorker()
        # Requests between _Observation's enter and exit (all on the event loop).
        self._requests_in_flight = 0
        self._load_cores = LoadCores(options.split_cores_for_loads)

    # ================================================================ lifecycle
    def start(self, config: ModelServerConfig, initial_wait_seconds: float = 600.0) -> None:
        """Apply the first config and wait for its models' first loads (as TF Serving)."""
        Servable.prepare_runtime(self.options.session)  # before any low-priority load
        self.manager.start()
        self.configs.start(config, initial_wait_seconds)

    def close(self) -> None:
        self.configs.stop()
        self.manager.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._load_worker.close()

    def apply_config(self, config: ModelServerConfig) -> None:
        """ReloadConfig; raises ServingError (previous config kept) when refused."""
        self.configs.apply(config)

    # =================================================================== loading
    def _load_servable(self, name: str, version: int, path: Path) -> Servable:
        loaders = (threading.get_native_id(), self._load_worker.thread_id)
        # The loader's Python work in short slices, between requests where it can (load_pacing.py).
        pace = Pacer(busy=lambda: self._requests_in_flight > 0)
        with self._load_cores.loading(loaders, pace):
            return self._load_on_load_core(name, version, path, pace)

    def _load_on_load_core(self, name: str, version: int, path: Path, pace: Pacer) -> Servable:
        call = self._load_worker.call
        servable = Servable.load(name, version, path, self.options.session, call, pace)
        if self.options.enable_model_warmup:
            try:
                replay_warmup(servable, self.options.num_request_iterations_for_warmup, call, pace)
            except ServingError:
                servable.close()
                raise
        self._placement.admit(servable)
        heap_freeze.freeze()  # the load's survivors are long-lived: keep GC off them
        return servable

    def _on_servable_event(
        self, name: str, version: int, event: str, seconds: float, error: ServingError | None
    ) -> None:
        if event == "unloaded" and self._batcher is not None:
            with self._queues_lock:
                gone = [
                    lookup
                    for lookup in self._queues
                    if (lookup[0].name, lookup[0].version) == (name, version)
                ]
                queues = [self._queues.pop(lookup) for lookup in gone]
            for queue in queues:
                queue.close()
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
            raise self._internal("resolve_signature", exc) from None

    # ================================================================= requests
    async def _observe(
        self, api: str, spec: model_pb2.ModelSpec, call: Callable[[_Observation], Awaitable[T]]
    ) -> T:
        """Run one API call: metrics, and nothing but ServingError escapes."""
        with _Observation(self, api, spec.name) as observed:
            return await call(observed)

    @staticmethod
    def _internal(api: str, exc: BaseException) -> ServingError:
        log.error("%s failed with an unexpected error", api, exc_info=exc)
        return ServingError(
            grpc.StatusCode.INTERNAL, f"Internal error in {api}: {type(exc).__name__}: {exc}"
        )

    def _run_deadline(self) -> float | None:
        """The request's deadline for its session run, unless runs are not to be cut short."""
        return current_deadline() if self.options.enforce_session_run_timeout else None

    async def _run(self, servable: Servable, prepared: PreparedRun) -> dict:
        """One graph call: through the batcher when enabled, else on the thread pool."""
        if self._batcher is not None:
            signature, outputs = prepared.signature_name, prepared.output_aliases
            lookup = (servable, signature, tuple(prepared.inputs), outputs)
            queue = self._queues.get(lookup)
            if queue is None or queue.closed:
                queue = self._open_queue(lookup, servable, prepared)
            return dict(await queue.submit(prepared.inputs))
        deadline = self._run_deadline()
        elements = numeric_elements(prepared.inputs)
        placement = self._placement
        if placement.on_loop(servable, prepared.signature_name, elements):
            _time_left(deadline)  # past it: not run at all
            # Short by evidence, so run here without a timeout: no hand-off at all.
            return _Runner(servable, prepared, self.metrics, None, placement, elements)(
                prepared.inputs
            )
        loop = asyncio.get_running_loop()
        run = _Runner(servable, prepared, self.metrics, deadline, placement, elements)
        return await loop.run_in_executor(self._executor, run, prepared.inputs)

    def _open_queue(self, lookup: tuple, servable: Servable, prepared: PreparedRun) -> BatchQueue:
        """The batch queue of this version, signature and tensors, remembered by ``lookup``.

        Requests find their queue in one dict read; building the scheduler's key
        and taking its lock on every request was a visible part of a batched
        request's time on the loop.
        """
        key = (
            servable.name,
            servable.version,
            prepared.signature_name,
            frozenset(prepared.inputs),
            prepared.output_aliases,
        )
        queue = self._batcher.queue(key, _Runner(servable, prepared, self.metrics))
        with self._queues_lock:
            self._queues[lookup] = queue
        return queue

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
        with _Observation(self, api, spec.name) as observed, self._acquire(spec) as servable:
            observed.version = servable.version
            prepared = prepare(servable, request)
            outputs = await self._run(servable, prepared)
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

        async def call(observed: _Observation) -> inference_pb2.MultiInferenceResponse:
            _, first_spec = check_multi_inference(request)
            with self._acquire(first_spec) as servable:
                observed.version = servable.version
                prepared, tasks = prepare_multi_inference(servable, request, strict)
                loop = asyncio.get_running_loop()
                deadline = self._run_deadline()

                def run() -> inference_pb2.MultiInferenceResponse:
                    timeout = _time_left(deadline)
                    return run_multi_inference(servable, prepared, tasks, timeout_s=timeout)

                return await loop.run_in_executor(self._executor, run)

        return await self._observe("MultiInference", spec, call)

    async def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def call(observed: _Observation) -> get_model_metadata_pb2.GetModelMetadataResponse:
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
        async def call(observed: _Observation) -> get_model_status_pb2.GetModelStatusResponse:
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
            raise self._internal("HandleReloadConfigRequest", exc) from None
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


class _Observation:
    """One API call's metrics; turns an unexpected exception into INTERNAL.

    A context manager rather than a wrapping coroutine, so the request path
    awaits no extra frame for it.
    """

    __slots__ = ("api", "core", "model_name", "started", "version")

    def __init__(self, core: ServerCore, api: str, model_name: str) -> None:
        self.core = core
        self.api = api
        self.model_name = model_name
        self.version: int | None = None  # the version that served, once acquired

    def __enter__(self) -> _Observation:
        self.started = time.perf_counter()
        self.core._requests_in_flight += 1
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.core._requests_in_flight -= 1
        if exc is None:
            status = "OK"
        elif isinstance(exc, ServingError):
            status = exc.code.name
        elif isinstance(exc, asyncio.CancelledError):
            status = "CANCELLED"
        else:
            status = "INTERNAL"
        metrics = self.core.metrics
        if metrics is not None:
            metrics.observe_request(
                self.api, self.model_name, self.version, status, time.perf_counter() - self.started
            )
        if isinstance(exc, Exception) and not isinstance(exc, ServingError):
            raise self.core._internal(self.api, exc) from None


def _start_helper() -> None:
    name_os_thread()
    batch_class_this_thread()


def _time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` for the session run's timeout; None for no deadline.

    A request whose deadline passed while it waited for a thread is not run at all.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise ServingError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded: the request's deadline passed before its session run began",
        )
    return left


class _Runner:
    """One TensorFlow call of a servable's signature (direct, or a batch queue's call).

    It times the session run alone, so operators can tell the model's own time
    from queueing, batching and protocol overhead, and so ``RunPlacement`` learns
    which signatures are short. Direct calls on the pool carry the request's
    deadline; a batch serves many callers and runs without one, and so does a run
    on the event loop (it is short by evidence; see run_placement.py).
    """

    __slots__ = (
        "deadline", "elements", "metrics", "outputs", "placement", "servable", "signature_name",
    )  # fmt: skip

    def __init__(
        self,
        servable: Servable,
        prepared: PreparedRun,
        metrics: Metrics | None,
        deadline: float | None = None,
        placement: RunPlacement | None = None,
        elements: int | None = None,
    ) -> None:
        self.servable = servable
        self.signature_name = prepared.signature_name
        self.outputs = prepared.output_aliases
        self.metrics = metrics
        self.deadline = deadline
        self.placement = placement  # direct runs report their time to it
        self.elements = elements

    def __call__(self, inputs: dict) -> dict:
        timeout = _time_left(self.deadline)
        if self.metrics is None and self.placement is None:
            return self.servable.run(self.signature_name, inputs, self.outputs, timeout_s=timeout)
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            return self.servable.run(self.signature_name, inputs, self.outputs, timeout_s=timeout)
        finally:
            seconds = time.perf_counter() - started
            servable = self.servable
            if self.placement is not None:
                # CPU time counts only where this thread ran the graph itself.
                cpu = time.thread_time() - cpu_started if timeout is None else None
                self.placement.record(servable, self.signature_name, self.elements, seconds, cpu)
            if self.metrics is not None:
                self.metrics.observe_runtime(
                    servable.name, servable.version, self.signature_name, seconds
                )


__all__ = ["CoreOptions", "ResolvedSignature", "ServerCore", "State"]
