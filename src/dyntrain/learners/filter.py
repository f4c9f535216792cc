"""Learned image filters: a small fully convolutional net on raw pixels (contract ``filter``).

``X`` is an object array of uint8 photos [H, W, 3] at their own size, ``y`` the output images
(uint8 [H, W] greyscale or [H, W, 3]) of the same size. A filter is scale-dependent (an edge map
of a downscaled photo is not the downscaled edge map), so the net trains and answers at the
photo's own resolution: it learns from random aligned crops (:data:`CROP` px) of the pairs and,
being convolutions only, then runs on a whole photo of any size.

The net: ``layers`` 3x3 convolutions of ``width`` channels with ReLU between them (receptive field
``2·layers + 1`` px; no padding inside: the served graph repeats the photo's edge pixels ``layers``
times first, so a photo's border is no edge and a batch padded by edges answers exactly), a linear output per channel
clamped to 0..1 and scaled to 0..255 only when served. Loss: the mean squared error per pixel —
PSNR, which selection and the gate compare, is that error in decibels. Measured on 20 crops of the
benchmark's photos, 400 steps, 20 held-out crops: Sobel 36.9 dB with MSE against 29.7 dB with L1
(3 layers), Canny 11.7–12.4 dB against 9.0–9.4 dB (L1 drives a binary edge map's uncertain pixels
to black, its median). A sigmoid output collapsed to all black under L1 (the mostly dark targets
push every logit down until its gradient vanishes), and Adam at lr 1e-2 was erratic; 3e-3 on 16
crops of 32 px per step was best per second. The time a fit may take is a number of optimiser steps (see
:func:`seconds_per_step`); the run plans them from the budget.

The served file is ONE ONNX graph: ``image`` uint8 [N, H, W, 3] → ``output`` uint8 [N, H, W, C]
(rounded inside), dynamic N, H and W; the output mode ("L"/"RGB") in its metadata.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .base import Learner, register

__all__ = ["FilterCNN", "FILTER_KIND", "INPUT_NAME", "OUTPUT_NAME", "CROP", "seconds_per_step", "steps_for"]

#: The feature kind of filter photos (see tasks.pairs.PairPhotoModality.features): the pixels themselves.
FILTER_KIND = "image.filter_photo"
INPUT_NAME, OUTPUT_NAME = "image", "output"
#: Side of the training crops, and crops per step.
CROP, BATCH = 32, 16
#: Steps of a fit when no budget plans them, and the bounds of a planned one.
DEFAULT_STEPS, MIN_STEPS, MAX_STEPS = 600, 100, 3000
#: One torch thread, as for every small convolution here (see learners._training.torch_threads).
TORCH_THREADS = 1


def steps_for(seconds: float, per_step: float) -> int:
    """Optimiser steps that fit in ``seconds`` at ``per_step`` seconds each, within the bounds.

    >>> steps_for(10, 0.02), steps_for(0.1, 0.02), steps_for(1e4, 0.02)
    (500, 100, 3000)
    """
    return int(np.clip(int(seconds / max(per_step, 1e-6)), MIN_STEPS, MAX_STEPS))


def _net(layers: int, width: int, channels: int):
    import torch
    from torch import nn

    class FilterNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            convs, c_in = [], 3
            for _ in range(layers - 1):
                convs += [nn.Conv2d(c_in, width, 3), nn.ReLU()]
                c_in = width
            convs.append(nn.Conv2d(c_in, channels, 3))
            self.body = nn.Sequential(*convs)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            """Float NCHW in 0..1 → the output, ``layers`` px smaller on each side (no padding)."""
            return self.body(x)

    return FilterNet()


def _served(net):
    """The net as served: uint8 NHWC in, uint8 NHWC out (rounded), the same arithmetic as :meth:`FilterCNN.predict`."""
    import torch
    from torch import nn

    class Served(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: "torch.Tensor") -> "torch.Tensor":
            x = image.permute(0, 3, 1, 2).float() / 255.0
            # the photo's edge pixels repeated once for all layers: each output pixel sees only the
            # photo and its repeated edge, so a photo padded by its edge (a batch of photos of
            # several sizes, see tasks.pairs) gets exactly the output it gets alone
            r = len([m for m in net.body if isinstance(m, nn.Conv2d)])
            x = nn.functional.pad(x, (r, r, r, r), mode="replicate")
            y = torch.round(self.net(x).clamp(0, 1) * 255.0)
            return y.permute(0, 2, 3, 1).to(torch.uint8)

    return Served().eval()


def _crops(photos, outputs, idx, rng, crop: int, margin: int):
    """A batch of aligned crops: photos (float NCHW in 0..1) and the inner part of their outputs
    the unpadded net answers (``margin`` px less on each side)."""
    xs, ys = [], []
    for i in idx:
        x, y = photos[i], outputs[i]
        h, w = x.shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        xc, yc = x[top:top + ch, left:left + cw], y[top:top + ch, left:left + cw]
        if (ch, cw) != (crop, crop):  # a photo smaller than a crop: edge-padded like the net pads
            pad = ((0, crop - ch), (0, crop - cw))
            xc, yc = np.pad(xc, pad + ((0, 0),), mode="edge"), np.pad(yc, pad + ((0, 0),) * (yc.ndim - 2), mode="edge")
        xs.append(xc)
        ys.append(yc if yc.ndim == 3 else yc[..., None])
    x = np.stack(xs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = np.stack(ys)[:, margin:crop - margin, margin:crop - margin].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return x, y


def _train(photos, outputs, layers: int, width: int, steps: int, seed: int, progress=None):
    """(net, curves) after ``steps`` Adam steps on random crops of the pairs."""
    import torch

    from . import _training

    channels = 1 if np.asarray(outputs[0]).ndim == 2 else 3
    rng = np.random.default_rng(seed)
    with _training.seeded(seed):
        net = _net(layers, width, channels)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    curves, running = [], None
    with _training.torch_threads(TORCH_THREADS):
        net.train()
        for step in range(steps):
            x, y = _crops(photos, outputs, rng.integers(0, len(photos), BATCH), rng, CROP, layers)
            loss = torch.nn.functional.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            if (step + 1) % max(1, steps // 20) == 0 or step + 1 == steps:
                curves.append({"epoch": step + 1, "train_loss": round(running, 5)})
                if progress is not None:
                    progress((step + 1) / steps)
    return net.eval(), curves


def _predict(net, photos) -> list[np.ndarray]:
    import torch

    from . import _training

    served, out = _served(net), []
    with _training.torch_threads(TORCH_THREADS), torch.no_grad():
        for p in photos:
            y = served(torch.from_numpy(np.array(p, np.uint8))[None]).numpy()[0]  # a copy: torch wants it writable
            out.append(y[..., 0] if y.shape[2] == 1 else y)
    return out


def seconds_per_step(params: dict[str, Any], photos, outputs, steps: int = 20) -> float:
    """Measured seconds of one optimiser step of this configuration on this machine now."""
    learner = FilterCNN(**params)
    _train(photos[:2], outputs[:2], learner.layers, learner.width, 1, 0)  # warm up (allocations)
    start = time.perf_counter()
    _train(photos[:2], outputs[:2], learner.layers, learner.width, steps, 0)
    return (time.perf_counter() - start) / steps


@register
class FilterCNN(Learner):
    """``layers`` 3x3 convolutions of ``width`` channels on the photo's pixels, trained ``steps``
    optimiser steps (None: :data:`DEFAULT_STEPS`)."""

    name = "image.filter_cnn"
    input_kind = FILTER_KIND
    contract = "filter"
    epochs_based = True

    def __init__(self, *, layers: int = 3, width: int = 16, steps: int | None = None) -> None:
        super().__init__()
        self.layers = layers
        self.width = width
        self.steps = steps

    def fit(self, X, y, *, n_classes: int = 0, sample_weight=None, progress=None, seed: int = 0,
            **_unused) -> "FilterCNN":
        from ..kernel.errors import Invalid

        if len(X) < 1:
            raise Invalid("a filter needs at least one photo with its output image to learn from")
        self.net_, self.curves = _train(list(X), list(y), self.layers, self.width,
                                        int(self.steps or DEFAULT_STEPS), seed, progress)
        self.mode_ = "L" if np.asarray(y[0]).ndim == 2 else "RGB"
        self.n_classes_ = 1 if self.mode_ == "L" else 3  # output channels (what the serving probe sizes)
        return self

    def predict(self, X) -> list[np.ndarray]:
        """Output images (uint8, the photo's size), rounded exactly as the exported file rounds."""
        self._check_fitted()
        return _predict(self.net_, list(X))

    def predict_proba(self, X):
        from ..kernel.errors import Invalid

        raise Invalid(f"{self.name} is an image filter: it answers an output image per photo (predict()), "
                      "not class probabilities")

    def export_onnx(self, path: str | Path, *, backbone_dir: str | Path | None = None) -> Path:
        import io
        import warnings

        import onnx
        import torch

        from ._nets import OPSET, save_onnx_bytes

        self._check_fitted()
        buf = io.BytesIO()
        axes = {0: "batch", 1: "height", 2: "width"}  # any photo size
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(_served(self.net_), (torch.zeros((1, 32, 32, 3), dtype=torch.uint8),), buf,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, opset_version=OPSET, dynamo=False)
        model = onnx.load_from_string(buf.getvalue())
        meta = model.metadata_props.add()
        meta.key, meta.value = "mode", self.mode_
        return save_onnx_bytes(model.SerializeToString(), path)
