"""One export, whatever the source: convert, check, annotate, publish.

The order matters: everything cheap that can refuse the export (feature file,
sample file, existing version, unwritable repository) runs before the model
is loaded; everything after the conversion happens inside the temporary
version directory, which is renamed into place only when parity, warmup and
manifest are done. A failure anywhere leaves the repository as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.checks.parity import compare_outputs
from export.checks.samples import batch_size, generate_arrays, read_sample_file, sample_arrays
from export.checks.signatures import SignatureInfo, serving_signatures
from export.errors import ExportError
from export.manifest import EXTRA_DIR, build_manifest, saved_model_files, write_manifest
from export.options import DEFAULT_SIGNATURE, ExportOptions
from export.progress import Progress
from export.publish.end_to_end import EndToEnd, run_end_to_end
from export.publish.features import (
    FeatureArtifact,
    copy_artifact,
    resolve_features,
    signature_input,
)
from export.publish.quantize import QuantizeRequest, quantize, tolerance
from export.publish.repository import VersionSlot
from export.publish.warmup import WARMUP_FILE, write_warmup
from export.sources.model_source import ModelSource


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _pick_signature(signatures: dict[str, SignatureInfo], requested: str | None) -> str:
    if requested is not None:
        if requested not in signatures:
            raise ExportError(
                f"--sample asks for signature {requested!r}; the SavedModel has "
                f"{', '.join(signatures) or 'none'}"
            )
        return requested
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    if not signatures:
        raise ExportError("the SavedModel has no signatures to serve")
    return next(iter(signatures))


def run_export(source: ModelSource, options: ExportOptions, progress: Progress) -> Path:
    """Publish ``source`` as ``<repo>/<name>/<version>`` and return that directory."""
    artifact = resolve_features(
        options.features,
        options.feature_function,
        options.input_schema,
        options.name,
        options.feature_module,
        options.example,
    )
    request = read_sample_file(options.sample) if options.sample is not None else None
    calibration = read_sample_file(options.calibration) if options.calibration else None
    evaluation = read_sample_file(options.eval) if options.eval else None
    version = options.version if options.version is not None else source.default_version()
    slot = VersionSlot(options.repo, options.name, version, options.force)
    slot.check()

    progress.step(f"loading {source.path} ({source.kind})")
    source.load()
    try:
        with slot:
            progress.step(f"converting to a SavedModel in {slot.tmp_dir}")
            source.write_saved_model(slot.tmp_dir)
            signatures = serving_signatures(slot.tmp_dir)
            signature_name = _pick_signature(signatures, request and request.signature_name)
            signature = signatures[signature_name]
            features_input = (
                signature_input(artifact, signature, options.signature_input)
                if artifact is not None
                else None
            )
            samples = (
                sample_arrays(request, signature)
                if request is not None
                else generate_arrays(signature)
            )
            rows = batch_size(samples)
            origin = f"from {request.path}" if request is not None else "generated"
            progress.step(
                f"parity check on {signature_name!r}: {rows} sample(s) ({origin}) through the "
                "original and through the exported SavedModel (session loader)"
            )
            parity = compare_outputs(
                _run_original(source, signature_name, samples),
                _run_exported(slot.tmp_dir, signature_name, samples),
                rows,
                options.atol,
            )
            progress.step(f"parity ok: max abs diff {parity.max_abs_diff:.3g} <= {options.atol:g}")

            compression = None
            if options.quantize is not None:
                compression = _quantize(
                    slot.tmp_dir, signature_name, signature, samples, calibration, evaluation,
                    options, progress,
                )
            extra = slot.tmp_dir / EXTRA_DIR
            progress.step(f"writing warmup requests to {EXTRA_DIR}/{WARMUP_FILE}")
            records = write_warmup(extra / WARMUP_FILE, options.name, signature_name, samples)
            features_entry: dict[str, Any] | None = None
            end_to_end = None
            if artifact is not None:
                features_entry = copy_artifact(artifact, extra)
                features_entry["signature_input"] = features_input
                end_to_end = _end_to_end(
                    source, slot.tmp_dir, signature_name, signature, artifact, features_entry,
                    options, progress,
                )
            manifest = build_manifest(
                name=options.name,
                version=version,
                source=source.description(),
                signatures=signatures,
                input_schema=artifact.input_schema if artifact is not None else None,
                features=features_entry,
                files=saved_model_files(slot.tmp_dir),
                parity=parity.as_manifest(),
                warmup_records=records,
                api_version=options.api_version,
                compression=compression,
                example_request=artifact.example if artifact is not None else None,
                end_to_end=end_to_end.as_manifest() if end_to_end is not None else None,
            )
            write_manifest(slot.tmp_dir, manifest)
            progress.step(f"publishing {slot.final_dir}")
            return slot.publish()
    finally:
        source.close()


def _end_to_end(
    source: ModelSource,
    directory: Path,
    signature_name: str,
    signature: SignatureInfo,
    artifact: FeatureArtifact,
    entry: dict[str, Any],
    options: ExportOptions,
    progress: Progress,
) -> EndToEnd | None:
    """The example record through the copied features and both graphs (publish/end_to_end)."""
    if artifact.example is None:
        if artifact.code is not None:
            raise ExportError(
                f"--feature-module {artifact.code}: needs an example record to check the "
                "version end to end: define EXAMPLE_REQUEST in it or pass --example FILE.json"
            )
        progress.step(
            "no example record (EXAMPLE_REQUEST or --example): end-to-end check skipped"
        )
        return None
    from export.checks.session_loader import SessionModel

    progress.step(
        "end-to-end check: the example record through the version's feature code, "
        "transformer and exported SavedModel, as the logic tier will run it"
    )
    with SessionModel(directory) as exported:
        result = run_end_to_end(
            artifact.example,
            directory / EXTRA_DIR,
            entry,
            artifact.derive,
            signature,
            lambda inputs: exported.run(signature_name, inputs),
            lambda inputs: _run_original(source, signature_name, inputs),
            options.atol,
        )
    shown = ", ".join(
        f"{k} {np.ravel(v)[0]:.6g}" if np.size(v) == 1 else f"{k} {v}"
        for k, v in result.outputs.items()
    )
    progress.step(f"end-to-end ok: {shown} (original vs export {result.max_abs_diff:.3g})")
    return result


def _quantize(
    directory: Path,
    signature_name: str,
    signature: SignatureInfo,
    samples: dict[str, Any],
    calibration: Any,
    evaluation: Any,
    options: ExportOptions,
    progress: Progress,
) -> dict[str, Any]:
    """``--quantize``: model.tflite written and checked; its manifest entry."""
    from export.checks.session_loader import SessionModel

    assert options.quantize is not None
    saved_model_bytes = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    request = QuantizeRequest(
        mode=options.quantize,
        atol=tolerance(options.quantize, options.quantize_atol),
        calibration=sample_arrays(calibration, signature) if calibration else samples,
        evaluation=sample_arrays(evaluation, signature) if evaluation else None,
        eval_path=options.eval,
        max_metric_drop=options.max_metric_drop,
    )
    with SessionModel(directory) as exported:
        result = quantize(
            directory, signature_name, request, samples,
            lambda inputs: exported.run(signature_name, inputs), progress,
        )
    return result.as_manifest(request, saved_model_bytes)


def _run_original(source: ModelSource, signature_name: str, samples: dict[str, Any]) -> Any:
    try:
        return source.run_original(signature_name, samples)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"the samples do not run through the original model: {_first_line(exc)}"
        ) from exc


def _run_exported(directory: Path, signature_name: str, samples: dict[str, Any]) -> Any:
    from export.checks.session_loader import SessionModel

    try:
        with SessionModel(directory) as exported:
            return exported.run(signature_name, samples)
    except Exception as exc:
        raise ExportError(
            "the exported SavedModel fails under the session loader TF Serving uses: "
            f"{_first_line(exc)}"
        ) from exc
