"""Training the detection head on cached feature maps of augmented copies (imports torch).

Each image is letterboxed to the candidate's input size; copy 0 is the image itself, the other
copies are box-aware augmentations (albumentations: affine translate / scale / rotate / shear,
horizontal flip, brightness / contrast / colour), so boxes move with the pixels. The frozen
backbone (ONNX Runtime, :mod:`.feature_maps`) runs once per copy; the head then trains for many
epochs on those cached maps, which is what makes a detector trainable in seconds on 2 cores.

>>> bank = build_bank(images, boxes, labels, size=320, copies=6, cache_dir=c, seed=0)  # doctest: +SKIP
>>> head = train_head(bank, np.arange(len(images)), n_classes=3, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import feature_maps as fm
from ..codecs import letterbox as lb
from ._training import seeded
from ._training import torch_threads
from .detection_nets import LEVELS, STRIDE, Decoder, DetectionHead, losses

__all__ = ["Bank", "build_bank", "augmenter", "targets", "train_head", "predict_bank", "DEFAULT_PASSES"]

# Sample passes (copies x epochs) a head trains for. Measured on 39 synthetic scenes x 8 copies,
# held-out mAP50:95: 1600 passes 0.53, 2400 0.58, 4800 0.61 at twice the time.
DEFAULT_PASSES = 2400
MIN_EPOCHS, MAX_EPOCHS = 8, 60
BATCH = 16
_init_lock = threading.Lock()
# Gaussian radius as a fraction of the box side (TTFNet's alpha = 0.54, sigma = alpha * side / 6).
GAUSS_ALPHA = 0.54


@dataclass
class Bank:
    """Cached backbone maps of every copy of every image, and their boxes in model pixels."""

    size: int
    feats: dict[str, np.ndarray]  # level -> float16 [copies_total, C, H, W]
    owner: np.ndarray  # image index of each copy
    copy: np.ndarray  # 0 = the letterboxed original
    boxes: list[np.ndarray]  # per copy: [k, 4] x, y, w, h in model pixels
    labels: list[np.ndarray]  # per copy: [k] class indices
    scales: np.ndarray  # per image letterbox scale
    pads: np.ndarray  # per image (pad_x, pad_y)
    shapes: list[tuple[int, int]]  # per image (height, width)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def copies_of(self, images: np.ndarray, originals_only: bool = False) -> np.ndarray:
        sel = np.isin(self.owner, images)
        if originals_only:
            sel &= self.copy == 0
        return np.flatnonzero(sel)


def augmenter(seed: int, size: int):
    """The box-aware augmentation pipeline (albumentations), seeded."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.Affine(scale=(0.6, 1.35), translate_percent=(-0.15, 0.15), rotate=(-10, 10), shear=(-6, 6),
                     rotate_method="ellipse", border_mode=cv2.BORDER_CONSTANT, fill=lb.PAD_VALUE, p=0.9),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=10, p=0.5),
        ],
        # Keep a box while at least 35% of it stays in view; clip it to the image.
        bbox_params=A.BboxParams(format="coco", label_fields=["labels"], min_visibility=0.35, clip=True,
                                 filter_invalid_bboxes=True),
        seed=int(seed),
    )


def build_bank(images: list[np.ndarray], boxes: list[np.ndarray], labels: list[np.ndarray], *, size: int,
               copies: int, cache_dir, seed: int, threads: int = 2,
               check: Callable[[], None] | None = None) -> Bank:
    """Letterbox, augment and embed every image ``copies`` times (copy 0 unaugmented)."""
    start = time.perf_counter()
    sess = fm.session(fm.export_feature_maps(cache_dir, size), threads=threads)
    aug = augmenter(seed, size) if copies > 1 else None
    batch, owner, copy_ix, cboxes, clabels, scales, pads, shapes = [], [], [], [], [], [], [], []
    feats: dict[str, list[np.ndarray]] = {level: [] for level in LEVELS}

    def flush() -> None:
        if batch:
            outs = sess.run(list(LEVELS), {"image": np.stack(batch)})
            for level, out in zip(LEVELS, outs):
                feats[level].append(out.astype(np.float16))
            batch.clear()

    for i, (image, b, lab) in enumerate(zip(images, boxes, labels)):
        boxed, scale, px, py = lb.letterbox(image, size)
        scales.append(scale)
        pads.append((px, py))
        shapes.append(image.shape[:2])
        mb = lb.boxes_to_model(b, scale, px, py).astype(np.float32) if len(b) else np.zeros((0, 4), np.float32)
        # Clip to the letterboxed square (rounding can push an edge a fraction of a pixel out).
        mb = _clip(mb, size)
        for c in range(copies):
            if c == 0:
                img, cb, cl = boxed[0], mb, np.asarray(lab, np.int64)
            else:
                out = aug(image=boxed[0], bboxes=mb, labels=np.asarray(lab, np.int64))
                img = out["image"]
                cb = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
                cl = np.asarray(out["labels"], np.int64).reshape(-1)
            batch.append(img)
            owner.append(i)
            copy_ix.append(c)
            cboxes.append(cb)
            clabels.append(cl)
            if len(batch) == 16:
                flush()
                if check is not None:
                    check()
    flush()
    return Bank(size=size, feats={k: np.concatenate(v) for k, v in feats.items()}, owner=np.array(owner),
                copy=np.array(copy_ix), boxes=cboxes, labels=clabels, scales=np.array(scales),
                pads=np.array(pads, np.float64), shapes=shapes, seconds=time.perf_counter() - start)


def _clip(b: np.ndarray, size: int) -> np.ndarray:
    if not len(b):
        return b
    x0, y0 = np.clip(b[:, 0], 0, size), np.clip(b[:, 1], 0, size)
    x1, y1 = np.clip(b[:, 0] + b[:, 2], 0, size), np.clip(b[:, 1] + b[:, 3], 0, size)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)


def targets(boxes: np.ndarray, labels: np.ndarray, n_classes: int, grid: int, stride: int = STRIDE) -> tuple[np.ndarray, ...]:
    """(heat [C,G,G], reg [4,G,G], weight [G,G]) for one copy (boxes in model pixels).

    Heat: an elliptic Gaussian per object (peak exactly 1 at the centre cell). Regression: at
    every cell where an object's Gaussian is >= 0.3 (the largest wins), the offset from the cell
    to the centre and the log size, in cells; weight = the Gaussian value there.
    """
    heat = np.zeros((n_classes, grid, grid), np.float32)
    reg = np.zeros((4, grid, grid), np.float32)
    weight = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for (x, y, w, h), lab in zip(boxes, labels):
        if w < 1 or h < 1:
            continue
        cx, cy = (x + w / 2) / stride, (y + h / 2) / stride
        ix, iy = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sx = max(GAUSS_ALPHA * w / stride / 6, 0.5)
        sy = max(GAUSS_ALPHA * h / stride / 6, 0.5)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        heat[lab] = np.maximum(heat[lab], g)
        heat[lab, iy, ix] = 1.0
        take = (g >= 0.3) & (g > weight)
        weight[take] = g[take]
        reg[0][take] = cx - xs[take]
        reg[1][take] = cy - ys[take]
        reg[2][take] = math.log(w / stride)
        reg[3][take] = math.log(h / stride)
    return heat, reg, weight


def _bank_targets(bank: Bank, rows: np.ndarray, n_classes: int, stride: int) -> tuple[torch.Tensor, ...]:
    grid = bank.size // stride
    parts = [targets(bank.boxes[r], bank.labels[r], n_classes, grid, stride) for r in rows]
    return tuple(torch.from_numpy(np.stack([p[i] for p in parts])) for i in range(3))


def train_head(bank: Bank, images: np.ndarray, n_classes: int, *, seed: int, passes: int = DEFAULT_PASSES,
               width: int = 32, stride: int = STRIDE, convs: int = 3, lr: float = 3e-3, batch: int = BATCH,
               threads: int = 1, check: Callable[[], None] | None = None,
               progress: Callable[[float], None] | None = None) -> DetectionHead:
    """Train a head on every copy of ``images`` (AdamW, warm-up + cosine decay); eval mode out."""
    rows = bank.copies_of(images)
    if not len(rows):
        raise ValueError("no training images")
    # float32 once (the bank keeps float16 to halve its memory): converting per batch cost 25%.
    feats = [torch.from_numpy(bank.feats[level][rows].astype(np.float32)) for level in LEVELS]
    heat_t, reg_t, weight_t = _bank_targets(bank, rows, n_classes, stride)
    n = len(rows)
    epochs = int(np.clip(round(passes / n), MIN_EPOCHS, MAX_EPOCHS))
    steps_per_epoch = max(1, math.ceil(n / batch))
    total = epochs * steps_per_epoch
    warmup = min(total // 10, 2 * steps_per_epoch)
    # Folds may train in parallel threads: the seeded construction touches torch's global RNG.
    with _init_lock, seeded(seed):
        head = DetectionHead(n_classes, width, stride, convs)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(int(seed))
    step = 0
    # One thread: the head's small convolutions gain nothing from a second one and lose up to
    # 10x when the other core is busy (measured on this 2-core machine, as _training notes).
    with torch_threads(threads):
        head.train()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            for idx in torch.tensor_split(order, steps_per_epoch):
                scale = (step + 1) / (warmup + 1) if step < warmup else \
                    0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
                for g in opt.param_groups:
                    g["lr"] = lr * scale
                heat, reg = head(*(f[idx] for f in feats))
                heat_loss, box_loss = losses(heat, reg, heat_t[idx], reg_t[idx], weight_t[idx])
                loss = heat_loss + box_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
            if check is not None:
                check()
            if progress is not None:
                progress((epoch + 1) / epochs)
    return head.eval()


def predict_bank(head: DetectionHead, bank: Bank, images: np.ndarray, *, k: int = 100) -> list[tuple[np.ndarray, ...]]:
    """Torch predictions on the unaugmented copy of ``images``: per image (boxes [K,4] in
    model pixels, scores [K], labels [K]), exactly what the exported graph computes."""
    # Row of each image's unaugmented copy, in the order of ``images``.
    sel = bank.copies_of(images, originals_only=True)
    first = dict(zip(bank.owner[sel].tolist(), sel.tolist()))
    rows = np.array([first[int(i)] for i in images], dtype=np.int64)
    decoder = Decoder(k, head.stride)
    out = []
    with torch.no_grad(), torch_threads(1):
        for start in range(0, len(rows), 64):
            r = rows[start : start + 64]
            boxes, scores, labels = decoder(*head(*(torch.from_numpy(bank.feats[lv][r]).float() for lv in LEVELS)))
            out += [(boxes[i].numpy(), scores[i].numpy(), labels[i].numpy()) for i in range(len(r))]
    return out
