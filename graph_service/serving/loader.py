"""Loading one version the way that keeps the versions already serving fast.

The manager's load function (TF Serving's SavedModel loader plus its warmup):
the C++ load and the warmup's session runs go to the idle-class worker
(cpu/low_priority.py), the loader's own Python work is paced between requests
(cpu/load_pacing.py), the load's threads get one core and serving the rest
(cpu/load_cores.py), the version is replayed its warmup records, admitted to run
placement, and the heap is frozen after it (cpu/heap_freeze.py).

With ``--prefer_tflite_model=true`` a version directory holding ``model.tflite``
is served from it instead of its SavedModel, as TF Serving's
SavedModelBundleFactory does (runtime/tflite_servable.py); without the file the
SavedModel serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from graph_service.cpu import heap_freeze
from graph_service.cpu.load_cores import LoadCores
from graph_service.cpu.load_pacing import Pacer
from graph_service.cpu.low_priority import LowPriorityWorker
from graph_service.errors import ServingError
from graph_service.inference.warmup import replay_warmup
from graph_service.runtime.custom_ops import load_custom_ops
from graph_service.runtime.run_placement import RunPlacement
from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions
from graph_service.runtime.tflite_servable import TfLiteServable, tflite_model_path

log = logging.getLogger("graph_service")


class VersionLoader:
    """Loads versions for the manager (one at a time: the manager has one loader thread)."""

    def __init__(
        self,
        session: SessionOptions,
        placement: RunPlacement,
        busy: Callable[[], bool],
        *,
        enable_model_warmup: bool = True,
        num_request_iterations_for_warmup: int = 1,
        split_cores_for_loads: bool = True,
        prefer_tflite_model: bool = False,
        tflite_pool_size: int = 1,
    ) -> None:
        self._session = session
        self._placement = placement  # loads admit to it
        self._busy = busy  # whether requests are in flight (the pacer yields to them)
        self._warmup = enable_model_warmup
        self._warmup_iterations = num_request_iterations_for_warmup
        # Loads' C++ work runs here so serving threads win the CPU (low_priority.py).
        self._load_worker = LowPriorityWorker()
        self._load_cores = LoadCores(split_cores_for_loads)
        self._prefer_tflite = prefer_tflite_model
        self._tflite_pool_size = tflite_pool_size

    def prepare_runtime(self) -> None:
        """TensorFlow's shared thread pools, created here before any low-priority load,
        and the op libraries TF Serving links in (custom_ops.py)."""
        Servable.prepare_runtime(self._session)
        load_custom_ops()

    def load(self, name: str, version: int, path: Path) -> Servable | TfLiteServable:
        loaders = (threading.get_native_id(), self._load_worker.thread_id)
        # The loader's Python work in short slices, between requests where it can (load_pacing.py).
        pace = Pacer(busy=self._busy)
        with self._load_cores.loading(loaders, pace):
            return self._load_on_load_core(name, version, path, pace)

    def _load_on_load_core(
        self, name: str, version: int, path: Path, pace: Pacer
    ) -> Servable | TfLiteServable:
        call = self._load_worker.call
        servable: Servable | TfLiteServable
        if self._prefer_tflite and tflite_model_path(path).is_file():
            servable = TfLiteServable.load(name, version, path, self._tflite_pool_size, call)
            log.info(
                "Serving %s version %d from model.tflite (TF Lite, %d bytes, up to %d "
                "interpreters)", name, version, servable.model_size, self._tflite_pool_size,
            )
        else:
            servable = Servable.load(name, version, path, self._session, call, pace)
        if self._warmup:
            try:
                replay_warmup(servable, self._warmup_iterations, call, pace)
            except ServingError:
                servable.close()
                raise
        self._placement.admit(servable)
        heap_freeze.freeze()  # the load's survivors are long-lived: keep GC off them
        return servable

    def close(self) -> None:
        self._load_worker.close()
