"""Reading a MetaGraphDef on the wire: real exports split, op names found by their encoding."""

from __future__ import annotations

import pytest
from tensorflow.core.framework import function_pb2, graph_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from graph_service.runtime.meta_graph_wire import (
    SCAN_CHUNK,
    WireError,
    graph_has_ops,
    split_meta_graph,
)


def _meta_graph(export_dir) -> meta_graph_pb2.MetaGraphDef:
    saved = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0]


@pytest.mark.parametrize("original", ["half_plus_two_b2", "tf2_multi", "keras_export"])
def test_a_real_meta_graph_splits_into_the_rest_and_its_graph(model_zoo, original) -> None:
    full = _meta_graph(model_zoo.originals / original)
    rest, graph = split_meta_graph(full.SerializeToString())
    assert graph_pb2.GraphDef.FromString(graph) == full.graph_def
    expected = meta_graph_pb2.MetaGraphDef()
    expected.CopyFrom(full)
    expected.ClearField("graph_def")
    assert rest == expected
    assert rest.signature_def == full.signature_def and len(rest.signature_def) > 0


def test_graph_def_entries_merge_as_protobuf_merges_them() -> None:
    first, second = graph_pb2.GraphDef(), graph_pb2.GraphDef()
    first.node.add(name="a", op="Placeholder")
    second.node.add(name="b", op="Identity")
    data = (
        meta_graph_pb2.MetaGraphDef(graph_def=first).SerializeToString()
        + meta_graph_pb2.MetaGraphDef(graph_def=second).SerializeToString()
    )
    rest, graph = split_meta_graph(data)
    assert [n.name for n in graph_pb2.GraphDef.FromString(graph).node] == ["a", "b"]
    assert rest == meta_graph_pb2.MetaGraphDef()


def test_an_op_is_found_by_its_type_not_by_a_name_or_a_prefix() -> None:
    graph = graph_pb2.GraphDef()
    graph.node.add(name="While", op="Identity")  # the name, not the op
    graph.node.add(name="x", op="Iff", input=["If"])  # a longer op, an input called "If"
    data = graph.SerializeToString()
    assert not graph_has_ops(data, ["While", "If"])
    assert graph_has_ops(data, ["Iff"])
    assert not graph_has_ops(data, [])


def test_ops_inside_library_functions_and_long_op_names_are_found() -> None:
    graph = graph_pb2.GraphDef()
    graph.node.add(name="call", op="StatefulPartitionedCall")
    function = function_pb2.FunctionDef()
    function.signature.name = "body"
    function.node_def.add(name="loop", op="StatelessWhile")
    graph.library.function.append(function)
    long_op = "Custom" + "x" * 200  # its length takes two varint bytes
    graph.node.add(name="custom", op=long_op)
    data = graph.SerializeToString()
    assert graph_has_ops(data, ["StatelessWhile"])
    assert graph_has_ops(data, [long_op])
    assert not graph_has_ops(data, [long_op[:-1]])


def test_malformed_bytes_are_refused_with_the_reason() -> None:
    with pytest.raises(WireError, match="past the end"):
        split_meta_graph(b"\x12\x05ab")  # graph_def claims 5 bytes, 2 follow
    with pytest.raises(WireError, match="truncated varint"):
        split_meta_graph(b"\x12")
    with pytest.raises(WireError, match="wire type 7"):
        split_meta_graph(b"\x0f")


def test_an_op_across_a_chunk_boundary_is_found_and_each_chunk_is_paced() -> None:
    node = graph_pb2.GraphDef()
    node.node.add(name="loop", op="While")
    encoded = node.SerializeToString()
    op_at = encoded.index(b"\x12\x05While")
    # Filler before the node puts its op field 3 bytes before the first chunk's end.
    data = _unknown_field(SCAN_CHUNK - 3 - op_at) + encoded + _unknown_field(2 * SCAN_CHUNK)
    assert data.index(b"\x12\x05While") == SCAN_CHUNK - 3
    paces: list[None] = []
    assert graph_has_ops(data, ["While"], lambda: paces.append(None))
    assert len(paces) == 0  # found in the first chunk's search, which reads past its end
    assert not graph_has_ops(data, ["If"], lambda: paces.append(None))
    assert len(paces) == -(-len(data) // SCAN_CHUNK) == 4  # a pause offered after each chunk


def _unknown_field(size: int) -> bytes:
    """An unknown length-delimited field (number 1000) taking exactly ``size`` bytes."""
    tag = b"\xc2\x3e"  # field 1000, wire type 2
    body = size - len(tag) - 3  # its length as a 3-byte varint, 7 bits a byte, low first
    length = bytes([(body & 0x7F) | 0x80, ((body >> 7) & 0x7F) | 0x80, body >> 14])
    return tag + length + b"\x00" * body
