"""Shared backbones: one ONNX Runtime session per distinct trunk, however many models use it.

An image or text model is ONE self-contained ONNX file: a pretrained trunk (EfficientNet-Lite0
up to ``pooled`` or ``block15_in``, all-MiniLM-L6-v2 up to ``embedding``) followed by a small
trained head whose nodes are all named ``head/…`` (``learners/_onnx.py``, ``learners/text.py``).
Ten projects on the same backbone would hold ten copies of the same weights (13.5 MB on disk,
~30 MB resident per Lite0 session) and build ten sessions at start-up. So serving cuts such a
file in two — trunk model and head model — and keeps one trunk session per distinct trunk.

The cut is made on the protobuf wire format (no ``onnx`` package: importing it takes seconds
and it belongs to the training extra): fields are copied byte for byte, nothing is decoded but
names. A trunk is keyed by the SHA-256 of its exact serialised bytes — graph, opsets and every
weight — so two models share a session only if their trunks are byte-identical; a model whose
weights differ in one byte gets its own. A file is cut only when that is provably the same
computation: the ``head/`` nodes take exactly one tensor from the rest (the cut) plus their own
constants, produce every graph output, and nothing else flows between the parts; otherwise
(pixel, TF-IDF, table and uploaded models, subgraphs, external data …) it is served whole.

>>> split = split_composed(Path("model.onnx").read_bytes())  # doctest: +SKIP
>>> split.cut, len(split.head_bytes) < len(split.trunk_bytes())  # doctest: +SKIP
('pooled', True)
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HEAD_PREFIX", "Split", "split_composed", "TrunkCache"]

HEAD_PREFIX = "head/"  # onnx.compose.add_prefix(head, "head/") in the exporters

# Field numbers of onnx.proto3 (stable: protobuf never renumbers).
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_OPSET = 1, 7, 8
_MODEL_UNSUPPORTED = {20: "training info", 25: "model-local functions", 26: "device configurations"}
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INIT, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 1, 2, 5, 11, 12, 13
_GRAPH_UNSUPPORTED = {14: "quantization annotations", 15: "sparse initializers"}
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_ATTRIBUTE = 1, 2, 3, 5
_ATTR_SUBGRAPHS = (6, 11)  # g, graphs: a subgraph may read any outer tensor by name
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2


class _NotSplittable(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        try:
            byte = buf[pos]
        except IndexError:
            raise _NotSplittable("truncated varint") from None
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int):
    """Each field of the message in ``buf[start:end]``: (number, start of field, start of value, end)."""
    pos = start
    while pos < end:
        first = pos
        key = buf[pos]
        if key < 0x80:  # one-byte keys (fields 1-15) and lengths are the common case: skip the call
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, stop = _varint(buf, pos)
        elif wire == 1:
            stop = pos + 8
        elif wire == 2:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            stop = pos + length
        elif wire == 5:
            stop = pos + 4
        else:
            raise _NotSplittable(f"unexpected wire type {wire}")
        if stop > end:
            raise _NotSplittable("truncated field")
        yield number, first, pos, stop
        pos = stop


def _string(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].decode("utf-8")


def _name_of(buf: bytes, start: int, end: int, field: int) -> str:
    for number, _, vs, ve in _fields(buf, start, end):
        if number == field:
            return _string(buf, vs, ve)
    return ""


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes | memoryview) -> list:
    """A length-delimited field (tag, length, payload) as chunks."""
    return [_varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)), payload]


@dataclass
class _Node:
    span: tuple[int, int]
    name: str
    inputs: list[str]
    outputs: list[str]


def _node(buf: bytes, first: int, start: int, end: int) -> _Node:
    node = _Node((first, end), "", [], [])
    for number, _, vs, ve in _fields(buf, start, end):
        if number == _NODE_INPUT:
            node.inputs.append(_string(buf, vs, ve))
        elif number == _NODE_OUTPUT:
            node.outputs.append(_string(buf, vs, ve))
        elif number == _NODE_NAME:
            node.name = _string(buf, vs, ve)
        elif number == _NODE_ATTRIBUTE:
            if any(n in _ATTR_SUBGRAPHS for n, *_ in _fields(buf, vs, ve)):
                raise _NotSplittable("a node has a subgraph")
    return node


@dataclass(frozen=True)
class Split:
    """A composed model cut at ``cut``: the trunk (shared by content) and the model's own head."""

    cut: str
    key: str  # SHA-256 of trunk_bytes(): graph, opsets and weights
    head_bytes: bytes
    _trunk_chunks: tuple

    def trunk_bytes(self) -> bytes:
        """The trunk model (only built when no session for ``key`` exists yet)."""
        return b"".join(self._trunk_chunks)


def split_composed(data: bytes, prefix: str = HEAD_PREFIX) -> Split | None:
    """Cut a serialised ONNX model into trunk and ``prefix`` head, or None when that is not
    provably the same computation (see the module docstring)."""
    try:
        return _split(data, prefix)
    except (_NotSplittable, UnicodeDecodeError):
        return None


def _split(buf: bytes, prefix: str) -> Split | None:
    view = memoryview(buf)
    model_keep, graph = [], None
    for number, first, vs, ve in _fields(buf, 0, len(buf)):
        if number == _MODEL_GRAPH:
            graph = (vs, ve)
        elif number in (_MODEL_IR_VERSION, _MODEL_OPSET):
            model_keep.append(view[first:ve])
        elif number in _MODEL_UNSUPPORTED:
            raise _NotSplittable(_MODEL_UNSUPPORTED[number])
    if graph is None:
        return None
    nodes: list[_Node] = []
    inits: list[tuple[str, tuple[int, int]]] = []
    inputs, outputs, value_info = [], [], {}
    for number, first, vs, ve in _fields(buf, *graph):
        if number == _GRAPH_NODE:
            nodes.append(_node(buf, first, vs, ve))
        elif number == _GRAPH_INIT:
            name, external = "", False
            for n, _, tvs, tve in _fields(buf, vs, ve):
                if n == _TENSOR_NAME:
                    name = _string(buf, tvs, tve)
                elif n == _TENSOR_EXTERNAL_DATA or (n == _TENSOR_DATA_LOCATION and _varint(buf, tvs)[0] == 1):
                    external = True
            if external:
                raise _NotSplittable("external data")
            inits.append((name, (first, ve)))
        elif number == _GRAPH_INPUT:
            inputs.append((_name_of(buf, vs, ve, _VALUE_INFO_NAME), (first, ve)))
        elif number == _GRAPH_OUTPUT:
            outputs.append((_name_of(buf, vs, ve, _VALUE_INFO_NAME), (first, ve)))
        elif number == _GRAPH_VALUE_INFO:
            value_info[_name_of(buf, vs, ve, _VALUE_INFO_NAME)] = (first, vs, ve)
        elif number in _GRAPH_UNSUPPORTED:
            raise _NotSplittable(_GRAPH_UNSUPPORTED[number])

    head = [n for n in nodes if n.name.startswith(prefix)]
    trunk = [n for n in nodes if not n.name.startswith(prefix)]
    if not head or not trunk:
        return None
    init_names = {name for name, _ in inits}
    input_names = {name for name, _ in inputs}
    if input_names & init_names:  # overridable initializers: keep such a model whole
        return None
    trunk_made = {o for n in trunk for o in n.outputs if o}
    head_made = {o for n in head for o in n.outputs if o}
    produced = [o for n in nodes for o in n.outputs if o]
    if len(set(produced)) != len(produced) or set(produced) & (init_names | input_names):
        return None  # not a valid graph: leave it whole, for ONNX Runtime to judge
    if any(i in head_made for n in trunk for i in n.inputs):
        return None
    cuts = {i for n in head for i in n.inputs if i in trunk_made}
    if len(cuts) != 1:
        return None
    (cut,) = cuts
    for n in head:
        for i in n.inputs:
            if i and i != cut and i not in head_made and i not in init_names:
                return None  # a graph input or another trunk tensor: not a clean cut
    if not outputs or any(name not in head_made for name, _ in outputs):
        return None
    if cut not in value_info:
        return None
    vi_first, vi_start, vi_end = value_info[cut]
    if not any(n == _VALUE_INFO_TYPE for n, *_ in _fields(buf, vi_start, vi_end)):
        return None
    cut_info = view[vi_start:vi_end]

    def graph_chunks(name: bytes, part: list[_Node], made: set[str], ins: list, outs: list) -> list:
        used = {i for n in part for i in n.inputs}
        chunks = _field(_GRAPH_NAME, name)
        chunks += [view[slice(*n.span)] for n in part]
        chunks += [view[slice(*span)] for iname, span in inits if iname in used]
        chunks += ins + outs
        chunks += [view[first:end] for vname, (first, _, end) in value_info.items() if vname in made and vname != cut]
        return chunks

    trunk_graph = graph_chunks(b"trunk", trunk, trunk_made, [view[slice(*span)] for _, span in inputs],
                               _field(_GRAPH_OUTPUT, cut_info))
    head_graph = graph_chunks(b"head", head, head_made, _field(_GRAPH_INPUT, cut_info),
                              [view[slice(*span)] for _, span in outputs])

    def model_chunks(graph_parts: list) -> list:
        length = sum(len(c) for c in graph_parts)
        return [*model_keep, _varint_bytes(_MODEL_GRAPH << 3 | 2) + _varint_bytes(length), *graph_parts]

    trunk_chunks = model_chunks(trunk_graph)
    digest = hashlib.sha256()
    for chunk in trunk_chunks:
        digest.update(chunk)
    return Split(cut, digest.hexdigest(), b"".join(model_chunks(head_graph)), tuple(trunk_chunks))


class TrunkCache:
    """Trunk sessions by (content key, options key), held only while some model uses them.

    >>> class Session: ...  # an onnxruntime.InferenceSession in serving
    >>> cache = TrunkCache()
    >>> a, created = cache.get(("k", 2), Session)
    >>> cache.get(("k", 2), Session) == (a, False)
    True
    """

    def __init__(self) -> None:
        self._sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.created = 0

    def get(self, key: tuple, create: Callable[[], object]) -> tuple[object, bool]:
        """(session, whether it was created by this call)."""
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                return session, False
            # Built under the lock: two projects loading the same trunk at once build it once.
            session = create()
            self._sessions[key] = session
            self.created += 1
            return session, True

    def __len__(self) -> int:
        return len(self._sessions)
