"""A loaded version's MetaGraphDef, read without parsing its graph.

The server needs a version's signatures, its saver and whether its graph has
ops whose cost follows input values (run_placement.py), but never the graph's
nodes as Python objects: TensorFlow's C++ loader already built the graph.
Parsing the whole MetaGraphDef is one C call that holds the GIL for as long as
the graph takes to decode -- 0.2-1.3 ms for the 39 KB demo graph on the bench
machine right after its load, far longer for large graphs -- and a request of a
version already serving that needs the GIL meanwhile waits all of it: at
concurrency 1 over REST that was the slowest request of almost every load.

So the top-level fields are split on the wire (a handful of entries, however
big the graph), every field but ``graph_def`` is parsed, and the graph stays
bytes that are searched, not decoded, for the ops that matter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from tensorflow.core.protobuf import meta_graph_pb2

from graph_service.cpu.load_pacing import no_pacing

GRAPH_DEF_FIELD = 2  # MetaGraphDef.graph_def
SCAN_CHUNK = 8 * 1024  # 10 us of search when cached, about 50 us right after a load
NODE_OP_TAG = b"\x12"  # NodeDef.op: field 2, length-delimited (also in FunctionDef.node_def)
_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5


# Serialized bytes, or a view of them (``memoryview`` over a C buffer, say).
Buffer = bytes | memoryview


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: Buffer, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def top_level_fields(data: Buffer) -> Iterator[tuple[int, int, int, int]]:
    """(field number, start of the entry, start of its value, end) for each entry in order."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            value, pos = pos, pos + length
        elif wire_type == _VARINT:
            value = pos
            _, pos = _varint(data, pos)
        elif wire_type == _FIXED64:
            value, pos = pos, pos + 8
        elif wire_type == _FIXED32:
            value, pos = pos, pos + 4
        else:
            raise WireError(f"unsupported wire type {wire_type} for field {field}")
        if pos > len(data):
            raise WireError(f"field {field} runs past the end of the message")
        yield field, start, value, pos


def split_meta_graph(data: Buffer) -> tuple[meta_graph_pb2.MetaGraphDef, Buffer]:
    """The MetaGraphDef without ``graph_def``, and the serialized GraphDef.

    The graph is a view into ``data`` (not a copy: right after a load the heap's
    fresh pages make every copy slow), valid as long as ``data`` is. Several
    ``graph_def`` entries merge as protobuf would: their bytes concatenate.
    """
    view = memoryview(data).cast("B")
    rest: list[memoryview] = []
    graph: list[memoryview] = []
    for field, start, value, end in top_level_fields(view):
        if field == GRAPH_DEF_FIELD:
            graph.append(view[value:end])
        else:
            rest.append(view[start:end])
    meta_graph = meta_graph_pb2.MetaGraphDef.FromString(b"".join(rest))
    return meta_graph, graph[0] if len(graph) == 1 else b"".join(graph)


def graph_has_ops(
    graph_def: Buffer, op_types: Iterable[str], pace: Callable[[], None] = no_pacing
) -> bool:
    """Whether a node of the graph, or of a function in its library, has one of ``op_types``.

    A node's op is written as the tag of NodeDef.op, the name's length and the
    name; those bytes appear wherever such a node is, so none is missed. Another
    field may hold the same bytes by chance: then the answer is a cautious yes.
    The search runs over ``SCAN_CHUNK`` bytes at a time with ``pace()`` between,
    so a large graph never holds the GIL for long (load_pacing.py).
    """
    by_length: dict[bytes, list[bytes]] = {}
    for name in sorted(set(map(str.encode, op_types))):
        by_length.setdefault(_varint_bytes(len(name)), []).append(name)
    if not by_length:
        return False
    # The tag, then the names grouped by their length prefix: 3x faster than one
    # flat alternation of whole encodings (35 KB in 45 us against 125 us).
    groups = (
        re.escape(size) + b"(?:" + b"|".join(map(re.escape, names)) + b")"
        for size, names in by_length.items()
    )
    pattern = re.compile(re.escape(NODE_OP_TAG) + b"(?:" + b"|".join(groups) + b")")
    longest = len(NODE_OP_TAG) + max(
        len(size) + len(name) for size, names in by_length.items() for name in names
    )
    for start in range(0, len(graph_def), SCAN_CHUNK):
        # A match that starts in this chunk ends within ``longest`` bytes after it.
        if pattern.search(graph_def, start, min(start + SCAN_CHUNK + longest, len(graph_def))):
            return True
        pace()
    return False


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)
