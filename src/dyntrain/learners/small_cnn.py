"""``image.small_cnn``: a small CNN trained from scratch on 32x32 grey pixels.

For tiny, grey or out-of-domain images (digits, symbols, simple shapes) where ImageNet
features help little. Random shifts of up to ``shift`` pixels augment each batch (digits
are rarely centred the same way twice). Deterministic for a ``seed`` on a given machine.

The ONNX graph does the uint8 224 -> grey 32x32 step itself (:class:`_nets.Gray32`, the
exact twin of the ``pixels.gray32`` features), then the CNN and softmax.

>>> cnn = SmallCNN(epochs=20, seed=0).fit(X_gray32, y, n_classes=10)  # doctest: +SKIP
>>> cnn.curves[-1]["loss"]  # doctest: +SKIP
0.05
"""

from __future__ import annotations

import numpy as np

from ..kernel.errors import Invalid
from . import _onnx
from .base import Learner, ProgressFn, check_fit_inputs, check_predict_input, register
from .features import GRAY32

__all__ = ["SmallCNN"]

# One torch thread: the convolutions are tiny, a second thread only adds synchronisation,
# and with the other core busy two OpenMP threads were measured up to 5x slower.
TORCH_THREADS = 1


@register
class SmallCNN(Learner):
    """Four 3x3 conv layers (width, 2*width, 2*width, 4*width channels), pooling, linear."""

    name = "image.small_cnn"
    input_kind = GRAY32
    epochs_based = True
    feature_shape = (32, 32)

    def __init__(
        self,
        *,
        epochs: int = 30,
        lr: float = 3e-3,
        width: int = 16,
        weight_decay: float = 5e-4,
        batch_size: int = 32,
        shift: int = 2,
        dropout: float = 0.2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.epochs = epochs
        self.lr = lr
        self.width = width
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.shift = shift
        self.dropout = dropout
        self.seed = seed

    def fit(self, X, y, *, n_classes, sample_weight=None, progress: ProgressFn | None = None):
        for key in ("epochs", "width", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise Invalid(f"{key} must be >= 1")
        X, y, sample_weight = check_fit_inputs(X, y, n_classes, sample_weight, self.feature_shape)
        import torch

        from . import _nets, _training

        if progress is not None:
            progress(0.0)
        with _training.seeded(self.seed):
            model = _nets.SmallCNN(n_classes, width=int(self.width), dropout=float(self.dropout))
        shift = int(self.shift)

        def augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            # Random translation by zero-padding then cropping: cheap and label-preserving.
            if shift <= 0:
                return xb
            n, size = len(xb), xb.shape[-1]
            padded = torch.nn.functional.pad(xb, (shift, shift, shift, shift))
            dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
            dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
            ar = torch.arange(size)
            rows = (dy[:, None] + ar)[:, :, None]  # (n, size, 1)
            cols = (dx[:, None] + ar)[:, None, :]  # (n, 1, size)
            return padded[torch.arange(n)[:, None, None], 0, rows, cols][:, None]

        with _training.torch_threads(TORCH_THREADS):
            self.curves = self._train(model, X, y, n_classes, sample_weight, augment, progress)
            _recompute_batchnorm(model, X[:, None, :, :])
            _training.mask_absent_classes(model.classifier, y, n_classes)
        self.model_ = model
        self.n_classes_ = int(n_classes)
        return self

    def _train(self, model, X, y, n_classes, sample_weight, augment, progress):
        from . import _training

        return _training.train_classifier(
            model,
            X[:, None, :, :],
            y,
            n_classes=n_classes,
            epochs=int(self.epochs),
            lr=float(self.lr),
            seed=int(self.seed),
            weight_decay=float(self.weight_decay),
            batch_size=int(self.batch_size),
            sample_weight=sample_weight,
            augment=augment,
            progress=progress,
        )

    def predict_proba(self, X):
        self._check_fitted()
        X = check_predict_input(X, self.feature_shape)
        if len(X) == 0:
            return np.zeros((0, self.n_classes_), np.float32)
        import torch

        from . import _training

        with _training.torch_threads(TORCH_THREADS):
            logits = _training.predict_logits(self.model_, X[:, None, :, :])
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def export_onnx(self, path, *, backbone_dir=None):
        self._check_fitted()
        import torch

        from . import _nets

        graph = torch.nn.Sequential(_nets.Gray32(), self.model_, torch.nn.Softmax(dim=1))
        example = torch.zeros(1, 224, 224, 3, dtype=torch.uint8)
        data = _nets.onnx_bytes(graph, example, input_name=_onnx.INPUT_NAME, output_names=[_onnx.OUTPUT_NAME])
        return _nets.save_onnx_bytes(data, path)


def _recompute_batchnorm(model, X: np.ndarray, batch_size: int = 256) -> None:
    """Replace BatchNorm running statistics by exact ones for the final weights.

    With few samples and few epochs the exponential running averages lag far behind the
    weights; eval-mode predictions would then differ from what training saw.
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the pass below
    model.train()
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            model(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size], dtype=np.float32)))
    for bn, m in zip(bns, saved):
        bn.momentum = m
    model.eval()
