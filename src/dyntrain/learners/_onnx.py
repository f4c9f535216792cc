"""Gluing ONNX graphs: the cached backbone + a small exported head = one model file.

Serving models are built from the *same* backbone file the feature cache was computed
with, so a served model sees byte-identical backbone weights and graph as training did.

>>> compose_with_backbone(cache_dir, "pooled", head_bytes, "model.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..storage.files import atomic_write
from . import backbone as bb

__all__ = ["compose_with_backbone", "soft_vote", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def compose_with_backbone(backbone_dir: str | Path, backbone_output: str, head_bytes: bytes, path: str | Path) -> Path:
    """Write ``image -> backbone[:backbone_output] -> head -> probabilities`` as one file.

    ``head_bytes`` is an ONNX model with one input (any name) and the output
    ``probabilities``. The backbone is cut at ``backbone_output`` so no unused nodes remain.
    """
    import onnx
    from onnx import compose, utils

    backbone = onnx.load(str(bb.export_backbone(backbone_dir)))
    trunk = utils.Extractor(backbone).extract_model([INPUT_NAME], [backbone_output])
    head = onnx.load_from_string(head_bytes)
    # Prefix everything in the head except its output, so its initializer and node names
    # can never collide with the backbone's.
    head = compose.add_prefix(head, "head/", rename_outputs=False)
    head_input = head.graph.input[0].name
    merged = compose.merge_models(
        trunk,
        head,
        io_map=[(backbone_output, head_input)],
        outputs=[OUTPUT_NAME],
        producer_name="dyntrain",
    )
    onnx.checker.check_model(merged)
    return atomic_write(Path(path), merged.SerializeToString())


def soft_vote(members: list, path: str | Path) -> Path:
    """Write ONE model whose ``probabilities`` are the mean of the ``members``' (ONNX models
    that output ``probabilities``); inputs of the same name are one shared input.

    Each member's graph is prefixed ``member<i>/`` (inputs keep their names, so ``image`` or
    ``text`` feeds them all), then work the members have in common is done once: initializers
    with equal contents become one, and a node with the same operator, attributes and inputs as
    an earlier one is dropped for it. Two members on the same Lite0 or MiniLM trunk thus run that
    trunk once (the file holds its weights once) and part where their weights differ.
    """
    import onnx
    from onnx import compose, helper

    if len(members) < 2:
        raise ValueError("a soft vote needs at least two members")
    members = _common_opsets(members)
    graphs, inputs = [], {}
    for i, member in enumerate(members):
        m = compose.add_prefix(member, f"member{i}/")
        # ... and back for the graph's inputs: one ``image`` (or ``text`` …) feeds every member
        shared = {f"member{i}/{inp.name}": inp.name for inp in member.graph.input}
        for inp in m.graph.input:
            inp.name = shared[inp.name]
        for node in m.graph.node:
            renamed = [shared.get(x, x) for x in node.input]
            del node.input[:]
            node.input.extend(renamed)
        for inp in m.graph.input:
            seen = inputs.setdefault(inp.name, inp)
            if seen.type.tensor_type.elem_type != inp.type.tensor_type.elem_type:
                raise ValueError(f"members disagree on the type of input {inp.name!r}")
        graphs.append(m.graph)
    outs = [f"member{i}/{OUTPUT_NAME}" for i in range(len(graphs))]
    count = helper.make_tensor("soft_vote/count", onnx.TensorProto.FLOAT, [], [float(len(graphs))])
    vote = [helper.make_node("Sum", outs, ["soft_vote/sum"], name="soft_vote/sum"),
            helper.make_node("Div", ["soft_vote/sum", "soft_vote/count"], [OUTPUT_NAME], name="soft_vote/mean")]
    output = onnx.ValueInfoProto()
    output.CopyFrom(graphs[0].output[0])
    output.name = OUTPUT_NAME
    nodes, inits, infos = _shared([n for g in graphs for n in g.node], [t for g in graphs for t in g.initializer],
                                  [v for g in graphs for v in g.value_info], keep=set(outs))
    graph = helper.make_graph(nodes + vote, "soft_vote", list(inputs.values()), [output], inits + [count],
                              value_info=infos)
    model = helper.make_model(graph, opset_imports=members[0].opset_import, producer_name="dyntrain")
    model.ir_version = max(m.ir_version for m in members)
    onnx.checker.check_model(model)
    return atomic_write(Path(path), model.SerializeToString())


def _common_opsets(members: list) -> list:
    """Members at the same version of every operator set (the highest any uses): one graph has one."""
    import onnx

    wanted: dict[str, int] = {}
    for m in members:
        for o in m.opset_import:
            wanted[o.domain] = max(wanted.get(o.domain, 0), o.version)
    out = []
    for m in members:
        have = {o.domain: o.version for o in m.opset_import}
        if have.get("", wanted.get("", 0)) != wanted.get("", 0):
            m = onnx.version_converter.convert_version(m, wanted[""])
        del m.opset_import[:]
        m.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sorted(wanted.items()))
        out.append(m)
    return out


# Operators whose every call is a new draw: two of them are never the same computation.
_NONDETERMINISTIC = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout")


def _shared(nodes: list, inits: list, infos: list, keep: set[str]) -> tuple[list, list, list]:
    """(nodes, initializers, value infos) with repeated constants and computations done once.

    ``nodes`` are in topological order. A graph with subgraphs (If, Loop) is left as it is: a
    subgraph may read outer tensors by name, which renaming would break."""
    import hashlib

    from onnx import numpy_helper

    if any(a.type in (5, 10) for n in nodes for a in n.attribute):  # GRAPH, GRAPHS
        return nodes, inits, infos
    alias: dict[str, str] = {}
    by_content: dict[tuple, str] = {}
    kept_inits = []
    for t in inits:
        array = numpy_helper.to_array(t)
        key = (t.data_type, tuple(t.dims), hashlib.sha256(array.tobytes()).hexdigest())
        if key in by_content:
            alias[t.name] = by_content[key]
        else:
            by_content[key] = t.name
            kept_inits.append(t)
    by_computation: dict[tuple, list[str]] = {}
    kept_nodes = []
    for n in nodes:
        renamed = [alias.get(i, i) for i in n.input]
        del n.input[:]
        n.input.extend(renamed)
        key = (n.domain, n.op_type, tuple(n.input), tuple(a.SerializeToString() for a in n.attribute))
        earlier = by_computation.get(key)
        if earlier is not None and n.op_type not in _NONDETERMINISTIC and len(earlier) == len(n.output) \
                and not keep & set(n.output):
            alias.update(zip(n.output, earlier))
            continue
        by_computation.setdefault(key, list(n.output))
        kept_nodes.append(n)
    made = {o for n in kept_nodes for o in n.output}
    return kept_nodes, kept_inits, [v for v in infos if v.name in made]
