"""SignatureDefs as data and as text: what ``inspect`` prints and the manifest stores.

Read straight from ``saved_model.pb`` (no session, no variables), so inspecting
a model is cheap and works on any SavedModel, including ones this machine
could not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from export.checks.session_loader import INIT_OP_SIGNATURE
from export.errors import ExportError

SignatureInfo = dict[str, Any]


def read_saved_model(directory: Path) -> saved_model_pb2.SavedModel:
    """Parse ``saved_model.pb`` (or ``.pbtxt``) of a SavedModel directory."""
    if not directory.exists():
        raise ExportError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise ExportError(f"{directory}: not a SavedModel directory (it is a file)")
    binary, text = directory / "saved_model.pb", directory / "saved_model.pbtxt"
    saved_model = saved_model_pb2.SavedModel()
    try:
        if binary.is_file():
            saved_model.ParseFromString(binary.read_bytes())
        elif text.is_file():
            from google.protobuf import text_format

            text_format.Parse(text.read_text(), saved_model)
        else:
            raise ExportError(
                f"{directory}: not a SavedModel directory (no saved_model.pb or saved_model.pbtxt)"
            )
    except ExportError:
        raise
    except Exception as exc:  # DecodeError, ParseError, UnicodeDecodeError
        raise ExportError(f"{directory}: saved_model.pb cannot be parsed: {exc}") from exc
    return saved_model


def tensor_info(info: meta_graph_pb2.TensorInfo) -> dict[str, Any]:
    """dtype as its DataType enum name, unknown dims as -1, unknown rank as None."""
    shape: list[int] | None
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = [int(dim.size) for dim in info.tensor_shape.dim]
    encoding = info.WhichOneof("encoding")
    if encoding == "name":
        name: str | None = info.name
    elif encoding == "coo_sparse":
        name = info.coo_sparse.values_tensor_name
    else:
        name = None
    return {"dtype": types_pb2.DataType.Name(info.dtype), "shape": shape, "tensor_name": name}


def describe_signatures(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, SignatureInfo]:
    """Every callable signature of a meta graph, sorted by key."""
    described: dict[str, SignatureInfo] = {}
    for key in sorted(meta_graph.signature_def):
        if key == INIT_OP_SIGNATURE:
            continue
        signature = meta_graph.signature_def[key]
        described[key] = {
            "method_name": signature.method_name,
            "inputs": {k: tensor_info(signature.inputs[k]) for k in sorted(signature.inputs)},
            "outputs": {k: tensor_info(signature.outputs[k]) for k in sorted(signature.outputs)},
        }
    return described


def serving_signatures(directory: Path) -> dict[str, SignatureInfo]:
    """Signatures of the meta graph tagged ``serve`` (the one TF Serving loads)."""
    for meta_graph in read_saved_model(directory).meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {"serve"}:
            return describe_signatures(meta_graph)
    raise ExportError(f"{directory}: no meta graph tagged 'serve'")


def describe_saved_model(directory: Path) -> dict[str, Any]:
    """What ``inspect --json`` prints: every meta graph with its tags and signatures."""
    saved_model = read_saved_model(directory)
    return {
        "path": str(directory),
        "meta_graphs": [
            {
                "tags": sorted(meta_graph.meta_info_def.tags),
                "signatures": describe_signatures(meta_graph),
            }
            for meta_graph in saved_model.meta_graphs
        ],
    }


def _shape_text(shape: list[int] | None) -> str:
    return "unknown rank" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"


def render_text(description: dict[str, Any]) -> str:
    """A readable listing in the spirit of ``saved_model_cli show --all``."""
    lines = [f"SavedModel: {description['path']}"]
    for meta_graph in description["meta_graphs"]:
        lines.append("")
        lines.append(f"MetaGraph with tags: {', '.join(meta_graph['tags']) or '(none)'}")
        if not meta_graph["signatures"]:
            lines.append("  (no signatures)")
        for key, signature in meta_graph["signatures"].items():
            lines.append("")
            lines.append(f"  signature {key!r}  method: {signature['method_name'] or '(none)'}")
            width = max(
                (len(name) for part in ("inputs", "outputs") for name in signature[part]),
                default=0,
            )
            for part in ("inputs", "outputs"):
                lines.append(f"    {part}:")
                tensors = signature[part]
                if not tensors:
                    lines.append("      (none)")
                for name, info in tensors.items():
                    lines.append(
                        f"      {name:<{width}}  {info['dtype']:<10} "
                        f"{_shape_text(info['shape']):<16} {info['tensor_name'] or ''}".rstrip()
                    )
    return "\n".join(lines)
