"""``image.finetune``: fine-tune Lite0's last block + head conv, plus a new classifier.

Full fine-tuning runs at ~10 img/s on 2 CPU cores, too slow for a platform that retrains
on every change. Instead the frozen part of the network (stem + blocks 0..14) runs once per
image in ONNX Runtime and its output (``lite0.block15_in``, [192,7,7]) is cached; training
then only runs block 15, the 1x1 head conv and the classifier (~200 img/s). BatchNorm
statistics stay frozen (ImageNet's are better than those of 20 images); BatchNorm scales
and shifts are trained. The tail learns at ``lr * tail_lr_scale``, the new classifier at ``lr``.

The ONNX file is the cached backbone cut at ``block15_in`` followed by the fine-tuned tail,
classifier and softmax: one file, uint8 image in, probabilities out.

>>> ft = Finetune(epochs=8, seed=0).fit(X_act, y, n_classes=5)  # doctest: +SKIP
>>> ft.export_onnx("model.onnx", backbone_dir=cache_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from ..kernel.errors import Invalid
from . import _onnx
from . import backbone as bb
from .base import Learner, ProgressFn, check_fit_inputs, check_predict_input, register
from .features import ACTIVATION

__all__ = ["Finetune"]

# One torch thread: training shares a small machine with serving and feature extraction;
# with the second core busy, two OpenMP threads were measured up to 5x slower than one.
TORCH_THREADS = 1


@register
class Finetune(Learner):
    """Trains Lite0 block 15 + head conv + a linear classifier on cached activations."""

    name = "image.finetune"
    input_kind = ACTIVATION
    epochs_based = True
    feature_shape = bb.ACTIVATION_SHAPE

    def __init__(
        self,
        *,
        epochs: int = 8,
        lr: float = 1e-3,
        tail_lr_scale: float = 0.1,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        dropout: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.epochs = epochs
        self.lr = lr
        self.tail_lr_scale = tail_lr_scale
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.dropout = dropout
        self.seed = seed

    def fit(self, X, y, *, n_classes, sample_weight=None, progress: ProgressFn | None = None):
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise Invalid("epochs and batch_size must be >= 1")
        X, y, sample_weight = check_fit_inputs(X, y, n_classes, sample_weight, self.feature_shape)
        import torch

        from . import _nets, _training

        if progress is not None:
            progress(0.0)
        with _training.seeded(self.seed):
            model = _nets.FinetuneHead(_lite0(), n_classes, dropout=float(self.dropout))
            # Zero-initialised classifier: the first steps move the head, not the
            # pretrained tail (random logits would send large gradients into it).
            torch.nn.init.zeros_(model.classifier.weight)
            torch.nn.init.zeros_(model.classifier.bias)

        def train_mode(m: torch.nn.Module) -> None:
            m.train()
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.eval()  # keep ImageNet statistics

        groups = [
            {"params": list(model.tail.parameters()), "lr": float(self.lr) * float(self.tail_lr_scale)},
            {"params": list(model.classifier.parameters()), "lr": float(self.lr)},
        ]
        with _training.torch_threads(TORCH_THREADS):
            self.curves = _training.train_classifier(
                model,
                X,
                y,
                n_classes=n_classes,
                epochs=int(self.epochs),
                lr=float(self.lr),
                seed=int(self.seed),
                weight_decay=float(self.weight_decay),
                batch_size=int(self.batch_size),
                sample_weight=sample_weight,
                param_groups=groups,
                train_mode=train_mode,
                progress=progress,
            )
        _training.mask_absent_classes(model.classifier, y, n_classes)
        self.model_ = model
        self.n_classes_ = int(n_classes)
        return self

    def predict_proba(self, X):
        self._check_fitted()
        X = check_predict_input(X, self.feature_shape)
        if len(X) == 0:
            return np.zeros((0, self.n_classes_), np.float32)
        import torch

        from . import _training

        with _training.torch_threads(TORCH_THREADS):
            logits = _training.predict_logits(self.model_, X, batch_size=64)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def export_onnx(self, path, *, backbone_dir):
        self._check_fitted()
        import torch

        from . import _nets

        head = torch.nn.Sequential(self.model_, torch.nn.Softmax(dim=1))
        example = torch.zeros(1, *bb.ACTIVATION_SHAPE)
        data = _nets.onnx_bytes(head, example, input_name="activation", output_names=[_onnx.OUTPUT_NAME])
        return _onnx.compose_with_backbone(backbone_dir, bb.ACTIVATION, data, path)


_LITE0 = None


def _lite0():
    """The pretrained Lite0 (loaded once per process; FinetuneHead deep-copies its tail)."""
    global _LITE0
    if _LITE0 is None:
        from . import _nets

        _LITE0 = _nets.load_lite0()
    return _LITE0
