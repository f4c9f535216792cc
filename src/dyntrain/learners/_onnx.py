"""Gluing ONNX graphs: the cached backbone + a small exported head = one model file.

Serving models are built from the *same* backbone file the feature cache was computed
with, so a served model sees byte-identical backbone weights and graph as training did.

>>> compose_with_backbone(cache_dir, "pooled", head_bytes, "model.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..storage.files import atomic_write
from . import backbone as bb

__all__ = ["compose_with_backbone", "INPUT_NAME", "OUTPUT_NAME"]

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
