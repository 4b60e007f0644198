"""What a ``model.tflite`` says about itself, read from its flatbuffer without running it.

TF Serving (``--prefer_tflite_model``) builds the version's SignatureDefs from the
TF Lite model itself (``TfLiteSession::Create``): a model written with TF Lite's
legacy SignatureDef metadata (``signature_defs_metadata``: a flexbuffer map of
signature key -> serialized ``SignatureDef``, what ``tflite::SetSignatureDefMap``
writes) keeps that SignatureDef, method name and all; a model with TF2's native
signatures gets one predict signature per key; a model with neither gets one
``serving_default`` predict signature named after its tensors. The first and the
last need the flatbuffer itself, read here with TF's own generated schema.

Whether the graph has control flow (``WHILE``/``IF``) is read here too: only graphs
without it have a cost that follows input shapes alone (run_placement.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from tensorflow.core.protobuf import meta_graph_pb2

LEGACY_SIGNATURE_METADATA = "signature_defs_metadata"
MODEL_FILE_NAME = "model.tflite"  # kTfLiteModelFilename, saved_model_bundle_factory.cc


@dataclass(frozen=True)
class TfLiteModelFacts:
    """The parts of the flatbuffer the servable needs."""

    legacy_signatures: dict[str, meta_graph_pb2.SignatureDef]
    control_flow: bool


def read_model_facts(model: bytes) -> TfLiteModelFacts:
    """Legacy SignatureDefs and control flow of a serialized TF Lite model.

    Raises ValueError when the bytes are not a TF Lite flatbuffer.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ValueError("not a TF Lite flatbuffer (no TFL3 identifier)")
    root = schema.Model.GetRootAsModel(model, 0)
    legacy: dict[str, meta_graph_pb2.SignatureDef] = {}
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if (entry.Name() or b"").decode() != LEGACY_SIGNATURE_METADATA:
            continue
        data = root.Buffers(entry.Buffer()).DataAsNumpy()
        legacy = _decode_legacy_signatures(bytes(data))
    control_flow_codes = {schema.BuiltinOperator.WHILE, schema.BuiltinOperator.IF}
    control_flow = any(
        max(root.OperatorCodes(i).BuiltinCode(), root.OperatorCodes(i).DeprecatedBuiltinCode())
        in control_flow_codes
        for i in range(root.OperatorCodesLength())
    )
    return TfLiteModelFacts(legacy, control_flow)


def _decode_legacy_signatures(blob: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    from flatbuffers import flexbuffers

    root = flexbuffers.GetRoot(blob).AsMap
    signatures: dict[str, meta_graph_pb2.SignatureDef] = {}
    for key, value in zip(root.Keys, root.Values, strict=True):
        raw = value.AsBlob if value.IsBlob else value.AsStringBytes
        signature = meta_graph_pb2.SignatureDef()
        signature.ParseFromString(bytes(raw))
        signatures[key.AsKey] = signature
    return signatures


def encode_legacy_signatures(signatures: dict[str, meta_graph_pb2.SignatureDef]) -> bytes:
    """The metadata blob ``tflite::SetSignatureDefMap`` writes (for tests and exports)."""
    from flatbuffers import flexbuffers

    builder = flexbuffers.Builder()
    with builder.Map():
        for key in sorted(signatures):
            builder.Key(key)
            # A flexbuffer String, as the C++ writer stores it; its Python String()
            # would UTF-8-encode text, and a serialized proto is bytes.
            builder._WriteBlob(
                signatures[key].SerializeToString(), append_zero=True,
                type_=flexbuffers.Type.STRING,
            )
    return bytes(builder.Finish())


def with_legacy_signatures(
    model: bytes, signatures: dict[str, meta_graph_pb2.SignatureDef]
) -> bytes:
    """``model`` with ``signature_defs_metadata`` set to ``signatures`` (replacing any)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    tree.metadata = [
        m for m in (tree.metadata or []) if (m.name or b"") != LEGACY_SIGNATURE_METADATA.encode()
    ]
    buffer = schema.BufferT()
    buffer.data = list(encode_legacy_signatures(signatures))
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = LEGACY_SIGNATURE_METADATA
    entry.buffer = len(tree.buffers) - 1
    tree.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))
