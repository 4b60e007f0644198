"""The model the graph benchmark serves, and the requests it sends to it.

The demo model (``serving_models/ctr/<newest version>``, published by
``scripts/publish_demo.py``) when it exists; otherwise a stand-in of the same
shape -- a small Keras MLP [None, 40] float32 -> [None, 1], exported with
``model.export`` like the demo -- so the benchmark runs on a fresh checkout.
The signature (input/output names, feature count) is read from the SavedModel,
never assumed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graph_service.runtime.servable import Servable
from graph_service.runtime.session_options import SessionOptions

SIGNATURE = "serving_default"
STAND_IN_FEATURES = 40


@dataclass(frozen=True)
class ModelUnderTest:
    name: str
    version_dir: Path  # one SavedModel version directory
    origin: str  # how it was obtained, for the report
    input_name: str
    output_name: str
    features: int
    dtype: np.dtype

    def sample(self) -> dict[str, np.ndarray]:
        """One example (a single row), deterministic so answers can be compared."""
        rng = np.random.default_rng(2024)
        return {self.input_name: rng.random((1, self.features)).astype(self.dtype)}


def newest_version(base: Path) -> Path | None:
    versions = [p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()]
    return max(versions, key=lambda p: int(p.name)) if versions else None


def prepare_model(repo: Path, name: str, workdir: Path) -> ModelUnderTest:
    base = repo / name
    found = newest_version(base) if base.is_dir() else None
    if found is not None:
        origin = f"demo model {found.relative_to(repo.parent)}"
        version_dir = found
    else:
        version_dir = build_stand_in(workdir / "stand_in" / name / "1")
        origin = (
            f"stand-in Keras MLP {STAND_IN_FEATURES}->64->32->1 (model.export); "
            f"{base} had no version"
        )
    servable = Servable.load(name, 1, version_dir, SessionOptions())
    try:
        signature = servable.signatures[SIGNATURE]
        if len(signature.inputs) != 1:
            raise SystemExit(
                f"{version_dir}: benchmark expects one input, found {len(signature.inputs)}"
            )
        input_name, tensor = next(iter(signature.inputs.items()))
        output_name = sorted(signature.outputs)[0]
        features = tensor.tensor_shape.dim[-1].size
        import tensorflow as tf

        dtype = np.dtype(tf.dtypes.as_dtype(tensor.dtype).as_numpy_dtype)
    finally:
        servable.close()
    return ModelUnderTest(name, version_dir, origin, input_name, output_name, features, dtype)


def build_stand_in(export_dir: Path) -> Path:
    if (export_dir / "saved_model.pb").exists():
        return export_dir
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input(shape=(STAND_IN_FEATURES,), dtype="float32", name="features"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    tmp = export_dir.with_name(f".tmp-{export_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), verbose=False)
    tmp.rename(export_dir)
    return export_dir


def copy_version(version_dir: Path, base: Path, version: int) -> Path:
    """Publish ``version_dir`` as ``base/<version>`` atomically (copy, then rename)."""
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(version_dir, tmp)
    target = base / str(version)
    tmp.rename(target)
    return target


def grpc_request(model: ModelUnderTest, version: int | None = None) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model.name
    request.model_spec.signature_name = SIGNATURE
    if version is not None:
        request.model_spec.version.value = version
    for name, value in model.sample().items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request.SerializeToString()


def rest_body(model: ModelUnderTest) -> bytes:
    rows = next(iter(model.sample().values())).tolist()
    return json.dumps({"signature_name": SIGNATURE, "instances": rows}).encode()


def constant_responses(model: ModelUnderTest, output: np.ndarray) -> tuple[bytes, bytes]:
    """What the no-op servers answer: the real answer's shape and size, fixed."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = model.name
    response.model_spec.version.value = 1
    response.model_spec.signature_name = SIGNATURE
    response.outputs[model.output_name].CopyFrom(tf.make_tensor_proto(output))
    body = json.dumps({"predictions": output.tolist()}).encode()
    return response.SerializeToString(), body
