"""PyTorch side of :mod:`dyntrain.learners.segmentation` (imports torch: import lazily).

The decoder is a small U-Net-like top-down path over the frozen Lite0 feature maps
(:mod:`dyntrain.learners.feature_maps`): each level is projected by a 1x1 conv, the coarser
result is upsampled x2 and fused with it by a 3x3 conv, down to the decoder's output stride
(8, or 4 to use the finest map as well), then a 1x1 conv gives class logits.

Training computes the loss at **full input resolution on sampled pixels**: the logits are
bilinearly interpolated (``grid_sample``, the same interpolation the exported graph upsamples
with) at random pixel centres of the mask. Upsampling the whole logit map for the loss was
measured to cost as much as the rest of the step on 2 CPU cores; a few thousand points per
image give the same gradient signal at a fraction of it, still against exact boundary labels.

>>> dec = Decoder(n_classes=4, stride=4)  # doctest: +SKIP
>>> logits = dec(s4, s8, s16, s32)  # [N, 4, S/4, S/4]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import time
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..codecs.masks import UNLABELLED
from . import _training

__all__ = ["Decoder", "Served", "train_decoder", "seconds_per_sample", "predict_masks", "onnx_head_bytes", "WIDTHS"]

# Channels after the 1x1 projection of s32, s16, s8, s4. Measured on 2 cores at 320 px: the
# stride-4 level dominates the cost, so it is kept narrow.
WIDTHS = (64, 48, 32, 16)
IN_CHANNELS = (320, 112, 40, 24)
# Share of each image's loss points spread equally over its classes (see _sample_points).
# Measured on synthetic scenes (20 training images, stride-4 decoder, 20 held-out scenes):
# test mIoU 0.756 with none, 0.843 / 0.858 / 0.850 / 0.838 with 0.05 / 0.1 / 0.15 / 0.25 (more
# makes small classes spill onto the background).
BALANCED = 0.1


def _cbr(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    """Top-down decoder: (s4, s8, s16, s32) -> logits at ``stride`` (8 ignores s4)."""

    def __init__(self, n_classes: int, stride: int = 4, widths: tuple[int, int, int, int] = WIDTHS,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if stride not in (4, 8):
            raise ValueError("the decoder's output stride is 4 or 8")
        self.stride = int(stride)
        w32, w16, w8, w4 = widths
        self.lat32 = _cbr(IN_CHANNELS[0], w32, 1)
        self.lat16 = _cbr(IN_CHANNELS[1], w16, 1)
        self.lat8 = _cbr(IN_CHANNELS[2], w8, 1)
        self.fuse16 = _cbr(w32 + w16, w16, 3)
        self.fuse8 = _cbr(w16 + w8, w8, 3)
        if self.stride == 4:
            self.lat4 = _cbr(IN_CHANNELS[3], w4, 1)
            self.fuse4 = _cbr(w8 + w4, w4, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(w4 if self.stride == 4 else w8, n_classes, 1)

    def forward(self, s4: torch.Tensor, s8: torch.Tensor, s16: torch.Tensor, s32: torch.Tensor) -> torch.Tensor:
        x = self.lat32(s32)
        x = self.fuse16(torch.cat([_up2(x), self.lat16(s16)], 1))
        x = self.fuse8(torch.cat([_up2(x), self.lat8(s8)], 1))
        if self.stride == 4:
            x = self.fuse4(torch.cat([_up2(x), self.lat4(s4)], 1))
        return self.classifier(self.dropout(x))


class Served(nn.Module):
    """Feature maps -> (``mask`` int64 [N,S,S], ``probabilities`` [N,C,S,S]): what ONNX runs."""

    def __init__(self, decoder: Decoder, size: int) -> None:
        super().__init__()
        self.decoder = decoder
        self.size = int(size)

    def forward(self, s4, s8, s16, s32):
        logits = F.interpolate(self.decoder(s4, s8, s16, s32), size=(self.size, self.size), mode="bilinear",
                               align_corners=False)
        return logits.argmax(dim=1), torch.softmax(logits, dim=1)


def _batch(features: list[np.ndarray], idx: np.ndarray) -> list[torch.Tensor]:
    # channels_last: oneDNN's convolutions run faster on it (measured ~15% a step on 2 cores).
    return [torch.from_numpy(np.ascontiguousarray(f[idx], dtype=np.float32)).contiguous(memory_format=torch.channels_last)
            for f in features]


def _sample_points(masks: np.ndarray, idx: np.ndarray, points: int, gen: np.random.Generator,
                   balanced: float = BALANCED):
    """Random labelled pixel centres per image: (grid [B,1,P,2] in [-1, 1], labels [B,P]).

    A ``balanced`` share of the points is spread equally over the classes present in the image,
    the rest uniformly over its labelled pixels: with uniform points alone a small object (a
    handwritten digit: a few hundred pixels of a 100,000) got almost no gradient and was
    measured at IoU 0.17 while large classes reached 0.9+.
    """
    b = len(idx)
    size = masks.shape[1]
    flat = masks[idx].reshape(b, -1)
    coords = np.empty((b, points), np.int64)
    n_bal = int(points * balanced)
    for j in range(b):
        labelled = np.flatnonzero(flat[j] != UNLABELLED)
        if len(labelled) == 0:
            coords[j] = 0
            continue
        coords[j, n_bal:] = labelled[gen.integers(0, len(labelled), points - n_bal)]
        if n_bal:
            ids = flat[j, labelled]
            # Sort once, then draw each point's class equally and a pixel of it uniformly.
            order = np.argsort(ids, kind="stable")
            classes, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
            pick = gen.integers(0, len(classes), n_bal)
            offsets = (gen.random(n_bal) * counts[pick]).astype(np.int64)
            coords[j, :n_bal] = labelled[order[starts[pick] + offsets]]
    labels = np.take_along_axis(flat, coords, axis=1).astype(np.int64)
    ys, xs = np.divmod(coords, size)
    # Pixel centres in the normalised coordinates of grid_sample(align_corners=False): the
    # same sampling positions as F.interpolate(..., align_corners=False) to the full size.
    grid = np.stack([(xs + 0.5) / size * 2 - 1, (ys + 0.5) / size * 2 - 1], axis=-1).astype(np.float32)
    return torch.from_numpy(grid[:, None]), torch.from_numpy(labels)


def train_decoder(
    features: list[np.ndarray],
    masks: np.ndarray,
    *,
    n_classes: int,
    stride: int,
    epochs: int,
    seed: int,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 8,
    points: int = 2048,
    progress: Callable[[float], None] | None = None,
) -> tuple[Decoder, list[dict]]:
    """Train a decoder on cached feature maps ``[s4, s8, s16, s32]`` and ``masks`` [N,S,S].

    AdamW with warm-up and cosine decay (as :func:`_training.train_classifier`); equal-sized
    batches; unlabelled pixels are never sampled. Returns the decoder (eval mode) and per-epoch
    curves (loss, point accuracy, seconds).
    """
    n = len(masks)
    batch_size = max(2, min(int(batch_size), n)) if n >= 2 else 1
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, steps_per_epoch * int(epochs))
    warmup = min(total // 10, 3 * steps_per_epoch)
    with _training.seeded(seed):
        model = Decoder(n_classes, stride=stride).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = np.random.default_rng(seed)
    curves: list[dict] = []
    step = 0
    start = time.perf_counter()
    with _training.seeded(seed + 1):
        for epoch in range(int(epochs)):
            model.train()
            order = gen.permutation(n)
            loss_sum = correct = seen = 0.0
            for idx in np.array_split(order, steps_per_epoch):
                if len(idx) == 1 and n > 1:
                    # BatchNorm cannot train on one sample's statistics alone.
                    idx = np.append(idx, order[0] if order[0] != idx[0] else order[-1])
                scale = (step + 1) / (warmup + 1) if step < warmup else \
                    0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
                for g in opt.param_groups:
                    g["lr"] = lr * scale
                logits = model(*_batch(features, idx))
                grid, labels = _sample_points(masks, idx, points, gen)
                sampled = F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
                loss = F.cross_entropy(sampled, labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                with torch.no_grad():
                    loss_sum += float(loss) * labels.numel()
                    correct += float((sampled.argmax(1) == labels).sum())
                    seen += labels.numel()
            curves.append({"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": correct / seen,
                           "seconds": time.perf_counter() - start})
            if progress is not None:
                progress((epoch + 1) / int(epochs))
    model.eval()
    return model, curves


def seconds_per_sample(features: list[np.ndarray], masks: np.ndarray, *, n_classes: int, stride: int,
                       batch_size: int = 8, steps: int = 3) -> float:
    """Measured training cost of one sample-step (a warm-up step, then the mean of ``steps``).

    Used to plan a fit within a time budget on *this* machine under its current load.
    """
    n = len(masks)
    idx = np.arange(min(n, batch_size))
    model = Decoder(n_classes, stride=stride).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = np.random.default_rng(0)
    took = []
    with _training.seeded(0):
        for k in range(steps + 1):
            t = time.perf_counter()
            logits = model(*_batch(features, idx))
            grid, labels = _sample_points(masks, idx, 2048, gen)
            sampled = F.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0]
            loss = F.cross_entropy(sampled, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if k:
                took.append((time.perf_counter() - t) / len(idx))
    # The mean, not the best: on a shared machine the best step was measured to promise ~30%
    # more speed than whole fits then had.
    return float(np.mean(took))


def predict_masks(decoder: Decoder, features: list[np.ndarray], size: int, batch_size: int = 8,
                  probabilities: bool = False):
    """Eval-mode masks [N,S,S] (int64) as the exported graph computes them (and probabilities)."""
    served = Served(decoder, size).eval()
    masks, probs = [], []
    n = len(features[0])
    with torch.no_grad():
        for i in range(0, n, batch_size):
            idx = np.arange(i, min(n, i + batch_size))
            m, p = served(*_batch(features, idx))
            masks.append(m.numpy())
            if probabilities:
                probs.append(p.numpy())
    out = np.concatenate(masks) if masks else np.zeros((0, size, size), np.int64)
    if probabilities:
        return out, (np.concatenate(probs) if probs else np.zeros((0, 0, size, size), np.float32))
    return out


def onnx_head_bytes(decoder: Decoder, size: int, opset: int) -> bytes:
    """The decoder + upsampling + argmax/softmax as ONNX: inputs s4..s32, outputs mask, probabilities."""
    served = Served(decoder, size).eval()
    example = tuple(torch.zeros(1, c, size // s, size // s) for c, s in ((24, 4), (40, 8), (112, 16), (320, 32)))
    names = ["s4", "s8", "s16", "s32"]
    buf = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in [*names, "mask", "probabilities"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(served, example, buf, input_names=names, output_names=["mask", "probabilities"],
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return buf.getvalue()
