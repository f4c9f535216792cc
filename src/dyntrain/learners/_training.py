"""Shared PyTorch training loop for epoch-based learners (imports torch: import lazily).

Deterministic for a seed: weights are initialised under a forked, seeded global RNG, and
shuffling/augmentation use a private ``torch.Generator``. (Results also depend on the number
of torch threads; a given machine and thread count replays exactly.)

>>> curves = train_classifier(model, X, y, n_classes=3, epochs=5, lr=1e-3, seed=0)  # doctest: +SKIP
>>> curves[-1].keys()  # doctest: +SKIP
dict_keys(['epoch', 'loss', 'accuracy', 'lr', 'seconds'])
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["seeded", "torch_threads", "train_classifier", "predict_logits", "class_balanced_weights", "mask_absent_classes"]

AugmentFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. module construction) under a seeded global RNG, then restore it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (process-wide; restored afterwards).

    Tiny convolutions gain nothing from a second thread and lose a lot when the other core
    is busy (measured: 2 threads up to 5x slower than 1 on a shared 2-core machine).
    """
    old = torch.get_num_threads()
    n = max(1, int(n))
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != old:
            torch.set_num_threads(old)


def class_balanced_weights(y: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """Per-sample weights normalised to mean 1 (keeps the loss scale independent of N)."""
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return w * (len(w) / w.sum())


def train_classifier(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    epochs: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.0,
    batch_size: int = 32,
    sample_weight: np.ndarray | None = None,
    param_groups: list[dict] | None = None,
    augment: AugmentFn | None = None,
    train_mode: Callable[[nn.Module], None] | None = None,
    progress: Callable[[float], None] | None = None,
    label_smoothing: float = 0.0,
) -> list[dict[str, float]]:
    """AdamW + cosine learning-rate decay with a short warm-up; returns per-epoch curves.

    ``train_mode(model)`` puts the model in training mode (default ``model.train()``): the
    fine-tuner uses it to keep BatchNorm statistics frozen. ``progress`` is called after
    every epoch; exceptions it raises (``Cancelled``) propagate.
    """
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    wt = torch.from_numpy(class_balanced_weights(y, sample_weight).astype(np.float32))
    n = len(Xt)
    batch_size = max(1, min(int(batch_size), n))
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, steps_per_epoch * int(epochs))
    warmup = min(total // 10, 3 * steps_per_epoch)

    groups = param_groups if param_groups is not None else [{"params": list(model.parameters())}]
    for g in groups:
        g.setdefault("lr", lr)
        g["initial_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    # Dropout draws from the global RNG: seed it for the whole loop (restored afterwards).
    with seeded(int(seed) + 1):
        curves: list[dict[str, float]] = []
        step = 0
        start = time.perf_counter()
        for epoch in range(int(epochs)):
            (train_mode or nn.Module.train)(model)
            order = torch.randperm(n, generator=gen)
            loss_sum, correct, seen = 0.0, 0.0, 0.0
            # Equal-sized batches (33 rows -> 17 + 16, not 32 + 1): a batch of one row made
            # BatchNorm training diverge (measured: loss stuck at 1.1 instead of 0.1).
            for idx in torch.tensor_split(order, steps_per_epoch):
                xb, yb, wb = Xt[idx], yt[idx], wt[idx]
                if augment is not None:
                    xb = augment(xb, gen)
                # Warm-up then cosine decay: robust defaults for tiny datasets and few epochs.
                if step < warmup:
                    scale = (step + 1) / (warmup + 1)
                else:
                    scale = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * scale
                logits = model(xb)
                losses = F.cross_entropy(logits, yb, reduction="none", label_smoothing=label_smoothing)
                loss = (losses * wb).sum() / wb.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                with torch.no_grad():
                    loss_sum += float((losses * wb).sum())
                    correct += float(((logits.argmax(1) == yb).float() * wb).sum())
                    seen += float(wb.sum())
            curves.append(
                {
                    "epoch": epoch + 1,
                    "loss": loss_sum / seen,
                    "accuracy": correct / seen,
                    "lr": float(opt.param_groups[0]["lr"]),
                    "seconds": time.perf_counter() - start,
                }
            )
            if progress is not None:
                progress((epoch + 1) / int(epochs))
    model.eval()
    return curves


def mask_absent_classes(classifier: nn.Linear, y: np.ndarray, n_classes: int) -> None:
    """Give classes with no training sample probability 0 (like the linear learners).

    Nothing was learnt about them; after a short training their untouched logits can still
    win. Weight rows 0 and bias -1e4 (exp underflows to exactly 0 in float32) carry over
    to the ONNX export unchanged.
    """
    absent = np.setdiff1d(np.arange(n_classes), np.unique(y))
    if len(absent):
        idx = torch.from_numpy(absent)
        with torch.no_grad():
            classifier.weight[idx] = 0.0
            classifier.bias[idx] = -1.0e4


def predict_logits(model: nn.Module, X: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Eval-mode forward pass in batches, float32 numpy logits."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            out.append(model(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size], dtype=np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def softmax_np(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
