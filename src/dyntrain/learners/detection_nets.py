"""PyTorch side of object detection (imports torch: training and export only, never serving).

A CenterNet-style head on the frozen multi-scale Lite0 maps of :mod:`.feature_maps`: each level
is reduced by a 1x1 conv at its own resolution, upsampled to stride 8 and summed, refined by a
depthwise-separable 3x3 block, then predicts per class a centre heat map and per cell the box
(sub-cell centre offset and log size). :class:`Decoder` turns those maps into boxes inside the
exported graph: peaks (a 3x3 max-pool keeps local maxima), top-K over classes and cells, boxes in
model-input pixels.

>>> head = DetectionHead(n_classes=3)  # doctest: +SKIP
>>> heat, reg = head(s8, s16, s32)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .feature_maps import CHANNELS

__all__ = ["STRIDE", "LEVELS", "DetectionHead", "Decoder", "ExportedDetector", "losses"]

STRIDE = 16  # default output grid; 8 is finer (objects under ~24 px) and 4x slower to train
LEVELS = ("s8", "s16", "s32")
HEAT_PRIOR = 0.05  # initial centre probability, so the focal loss starts stable (CenterNet)


class DetectionHead(nn.Module):
    """(s8, s16, s32) feature maps -> (centre logits [N,C,H,W], box regression [N,4,H,W]).

    The output grid has ``stride`` 8 or 16: finer maps are folded into it (space-to-depth, so
    no detail is averaged away), coarser ones upsampled. The regression channels are
    (dx, dy, log w, log h) in cells: the centre lies at (cell + d) * stride and the box is
    exp(log w) * stride wide.
    """

    def __init__(self, n_classes: int, width: int = 32, stride: int = STRIDE, convs: int = 3) -> None:
        super().__init__()
        if stride not in (8, 16):
            raise ValueError(f"stride must be 8 or 16, not {stride}")
        self.stride = int(stride)
        fold = {"s8": (self.stride // 8) ** 2, "s16": 1, "s32": 1}
        self.reduce = nn.ModuleList(nn.Conv2d(CHANNELS[level] * fold[level], width, 1) for level in LEVELS)
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(convs):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.refine = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, n_classes + 4, 1)
        self.n_classes = int(n_classes)
        with torch.no_grad():
            self.out.bias[:n_classes] = float(torch.logit(torch.tensor(HEAT_PRIOR)))

    def forward(self, s8: torch.Tensor, s16: torch.Tensor, s32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride == 16:
            s8 = F.pixel_unshuffle(s8, 2)
        maps = (s8, s16, s32)
        size = maps[LEVELS.index(f"s{self.stride}")].shape[-2:]
        x = None
        for conv, m in zip(self.reduce, maps):
            y = conv(m)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            x = y if x is None else x + y
        out = self.out(self.refine(x))
        return out[:, : self.n_classes], out[:, self.n_classes :]


class Decoder(nn.Module):
    """Maps -> top ``k`` detections: boxes [N,K,4] (x, y, w, h px), scores [N,K], labels [N,K]."""

    def __init__(self, k: int = 100, stride: int = STRIDE) -> None:
        super().__init__()
        self.k, self.stride = int(k), int(stride)

    def forward(self, heat_logits: torch.Tensor, reg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, c, h, w = heat_logits.shape
        heat = torch.sigmoid(heat_logits)
        # A cell is a peak when it is the maximum of its 3x3 neighbourhood (CenterNet's NMS).
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
        k = min(self.k, c * h * w)
        scores, index = torch.topk(peaks.reshape(n, c * h * w), k, dim=1)
        labels = torch.div(index, h * w, rounding_mode="floor")
        cell = index - labels * (h * w)
        cy = torch.div(cell, w, rounding_mode="floor")
        cx = cell - cy * w
        r = torch.gather(reg.reshape(n, 4, h * w), 2, cell.unsqueeze(1).expand(n, 4, k))
        centre_x = (cx.to(heat.dtype) + r[:, 0]) * self.stride
        centre_y = (cy.to(heat.dtype) + r[:, 1]) * self.stride
        bw = torch.exp(r[:, 2].clamp(max=8.0)) * self.stride
        bh = torch.exp(r[:, 3].clamp(max=8.0)) * self.stride
        boxes = torch.stack([centre_x - bw / 2, centre_y - bh / 2, bw, bh], dim=2)
        return boxes, scores, labels.to(torch.int64)


class ExportedDetector(nn.Module):
    """Head + decoder, the part of the served graph after the frozen feature maps."""

    def __init__(self, head: DetectionHead, k: int = 100) -> None:
        super().__init__()
        self.head = head
        self.decoder = Decoder(k, head.stride)

    def forward(self, s8: torch.Tensor, s16: torch.Tensor, s32: torch.Tensor):
        return self.decoder(*self.head(s8, s16, s32))


def losses(heat_logits: torch.Tensor, reg: torch.Tensor, heat_target: torch.Tensor, reg_target: torch.Tensor,
           reg_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre focal loss, box L1 loss), each normalised by the number of objects.

    Focal loss with CenterNet's penalty reduction near centres (alpha 2, beta 4); the box loss is
    an L1 over the cells near each centre, weighted by the Gaussian target there.
    """
    pred = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
    pos = heat_target.eq(1).to(pred.dtype)
    n_pos = pos.sum().clamp(min=1.0)
    pos_loss = -(torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - pred) * pred**2 * (1 - heat_target) ** 4 * (1 - pos)).sum()
    heat_loss = (pos_loss + neg_loss) / n_pos
    weight = reg_weight.unsqueeze(1)
    box_loss = (F.l1_loss(reg, reg_target, reduction="none") * weight).sum() / weight.sum().clamp(min=1.0)
    return heat_loss, box_loss
