"""The semantic-segmentation learner: the decoder of :mod:`.segmentation_nets` on frozen Lite0
feature maps, behind the one learner contract (contract ``segmenter``).

``X`` is an object array of :class:`~.detector.Photo` (pixels at most 640 px on the longer side,
the scale from original pixels, where the backbone files live); ``y`` an object array of uint8
masks of class ids at each photo's ORIGINAL size (255 = unlabelled, never learnt). Predictions
are masks at the original size, decoded as serving decodes the exported file: one ONNX graph,
``image`` uint8 [N,S,S,3] letterboxed → ``mask`` int64 [N,S,S] and ``probabilities``.

Each photo is trained on as itself plus augmented views (geometric changes to photo and mask
together, photometric to the photo only: :func:`.segmentation.build_views`), whose backbone maps
are cached on disk by content; one :class:`Bank` of them serves every fold of a run, so the
backbone runs once per view and each fold trains only a decoder (see :func:`cross_validate`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Learner, register

__all__ = ["Segmenter", "SEGMENT_KIND", "Bank", "bank_for", "cross_validate", "epochs_for"]

#: The feature kind of photos for segmentation (see tasks.masks.MaskPhotoModality.features).
SEGMENT_KIND = "image.segment_photo"
#: Views per photo: the photo itself and two augmented copies (as the segmentation benchmark ran).
VIEWS = 3
#: Sample-steps of a fit by default (the benchmark's measured rule: about 900 views × epochs).
PASSES = 900
MIN_EPOCHS, MAX_EPOCHS = 4, 30


def epochs_for(n_images: int, views: int = VIEWS, passes: int = PASSES) -> int:
    """Epochs of a fit on ``n_images`` photos: about ``passes`` view-steps, within 4..30.

    >>> epochs_for(10), epochs_for(100)
    (30, 4)
    """
    return int(np.clip(round(passes / max(1, n_images * views)), MIN_EPOCHS, MAX_EPOCHS))


@dataclass(eq=False)
class Bank:
    """Backbone maps of every view of a run's photos, their masks and letterbox placements."""

    features: list[np.ndarray]
    masks: np.ndarray  # [N*views, S, S] uint8, letterboxed (padding unlabelled)
    infos: list[tuple[float, int, int]]  # per photo: (scale, pad_x, pad_y) of view 0
    views: int
    size: int

    def rows(self, images) -> np.ndarray:
        """Feature rows of every view of ``images`` (image-major)."""
        images = np.asarray(images, np.int64)
        return (images[:, None] * self.views + np.arange(self.views)[None, :]).reshape(-1)


def _resized(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A mask at ``height`` x ``width`` (nearest: ids are never blended)."""
    mask = np.asarray(mask, np.uint8)
    if mask.shape == (height, width):
        return mask
    ys = np.minimum((np.arange(height) + 0.5) * mask.shape[0] / height, mask.shape[0] - 1).astype(int)
    xs = np.minimum((np.arange(width) + 0.5) * mask.shape[1] / width, mask.shape[1] - 1).astype(int)
    return mask[ys][:, xs]


# The banks of the last runs' photos (selection, evaluation and the final fit of one run share
# one); holding the photos and masks keeps their ids from being reused while their bank is kept.
_BANKS: "OrderedDict[tuple, tuple[tuple, Bank]]" = OrderedDict()
_BANKS_MAX = 2
_lock = threading.Lock()


def bank_for(photos, masks, size: int, views: int = VIEWS, *, cache: bool = True, progress=None) -> Bank:
    """The :class:`Bank` of ``photos`` (with ``masks`` at their original sizes)."""
    from .segmentation import build_views

    photos, masks = list(photos), list(masks)
    key = (tuple(id(p) for p in photos), tuple(id(m) for m in masks), int(size), int(views))
    with _lock:
        if cache and key in _BANKS:
            _BANKS.move_to_end(key)
            return _BANKS[key][1]
    features, view_masks, infos, _ = build_views(
        [p.pixels for p in photos], [_resized(m, *p.pixels.shape[:2]) for m, p in zip(masks, photos)], int(size), int(views),
        Path(photos[0].cache_dir), threads=2, progress=progress)
    bank = Bank(features, view_masks, infos, int(views), int(size))
    if cache:
        with _lock:
            _BANKS[key] = ((photos, masks), bank)
            while len(_BANKS) > _BANKS_MAX:
                _BANKS.popitem(last=False)
    return bank


def _train(bank: Bank, images, n_classes: int, stride: int, epochs: int, seed: int, progress=None):
    from . import _training
    from .segmentation import TORCH_THREADS
    from .segmentation_nets import train_decoder

    rows = bank.rows(images)
    with _training.torch_threads(TORCH_THREADS):
        return train_decoder([f[rows] for f in bank.features], bank.masks[rows], n_classes=n_classes, stride=stride,
                             epochs=epochs, seed=seed, progress=progress)


def _predict(decoder, bank: Bank, images, photos) -> list[np.ndarray]:
    """Masks of ``images`` (indices into the bank and ``photos``) at their original sizes."""
    from ..codecs.letterbox import map_to_original
    from . import _training
    from .segmentation import TORCH_THREADS
    from .segmentation_nets import predict_masks

    images = np.asarray(images, np.int64)
    rows = images * bank.views  # view 0: the photo itself
    with _training.torch_threads(TORCH_THREADS):
        masks = predict_masks(decoder, [f[rows] for f in bank.features], bank.size)
    out = []
    for m, i in zip(masks, images):
        photo = photos[int(i)]
        h, w = photo.pixels.shape[:2]
        at_photo = map_to_original(m, *bank.infos[int(i)], w, h, nearest=True).astype(np.uint8)
        width, height = photo.original_size
        out.append(_resized(at_photo, height, width))
    return out


def cross_validate(params: dict[str, Any], photos, masks, n_classes: int, folds, *, seed: int, epochs: int,
                   progress=None) -> list[list[np.ndarray]]:
    """Out-of-fold masks (original sizes) of the photos tested in ``folds`` (``[(train, test)]``
    index pairs), one bank for all of them; returns per fold the test photos' masks."""
    learner = Segmenter(**params)
    photos = list(photos)
    bank = bank_for(photos, masks, learner.size, learner.views)
    out = []
    for k, (train, test) in enumerate(folds):
        decoder, _ = _train(bank, train, n_classes, learner.stride, epochs, seed + k)
        out.append(_predict(decoder, bank, test, photos))
        if progress is not None:
            progress((k + 1) / len(folds))
    return out


def seconds_per_view(params: dict[str, Any], photos, masks, n_classes: int) -> float:
    """Measured seconds of one view-step of a fit of this configuration on this machine now."""
    from . import _training
    from .segmentation import TORCH_THREADS
    from .segmentation_nets import seconds_per_sample

    learner = Segmenter(**params)
    bank = bank_for(photos, masks, learner.size, learner.views)
    with _training.torch_threads(TORCH_THREADS):
        return seconds_per_sample(bank.features, bank.masks, n_classes=n_classes, stride=learner.stride)


@register
class Segmenter(Learner):
    """A decoder with output ``stride`` 8 or 4 on frozen Lite0 maps at input ``size`` (letterboxed),
    trained on ``views`` views of each photo for ``epochs`` passes (None: :func:`epochs_for`)."""

    name = "image.segmenter"
    input_kind = SEGMENT_KIND
    contract = "segmenter"
    epochs_based = True

    def __init__(self, *, stride: int = 8, size: int = 320, views: int = VIEWS, epochs: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.size = size
        self.views = views
        self.epochs = epochs

    def fit(self, X, y, *, n_classes: int, sample_weight=None, progress=None, seed: int = 0,
            class_names: list[str] | None = None) -> "Segmenter":
        from ..kernel.errors import Invalid

        if len(X) < 2:
            raise Invalid(f"segmentation needs at least 2 photos with masks to train (got {len(X)})")
        bank = bank_for(X, y, self.size, self.views)
        epochs = int(self.epochs or epochs_for(len(X), self.views))
        self.decoder_, self.curves = _train(bank, np.arange(len(X)), n_classes, self.stride, epochs, seed, progress)
        self.cache_dir_ = X[0].cache_dir
        self.n_classes_ = n_classes
        self.class_names_ = list(class_names or (str(k) for k in range(n_classes)))
        return self

    def predict(self, X) -> list[np.ndarray]:
        """Masks (uint8 class ids) at each photo's original size."""
        from ..codecs.masks import UNLABELLED

        self._check_fitted()
        photos = list(X)
        empty = [np.full(p.pixels.shape[:2], UNLABELLED, np.uint8) for p in photos]
        bank = bank_for(photos, empty, self.size, 1, cache=False)
        return _predict(self.decoder_, bank, np.arange(len(photos)), photos)

    def predict_proba(self, X):
        from ..kernel.errors import Invalid

        raise Invalid(f"{self.name} is a segmenter: it answers a mask per photo (predict()), not class "
                      "probabilities per photo")

    def export_onnx(self, path: str | Path, *, backbone_dir: str | Path) -> Path:
        """One graph: letterboxed uint8 photo → mask, probabilities; the classes, colours and input
        size in its metadata (see segmentation.export_segmenter)."""
        from ..codecs.masks import default_colors
        from .segmentation import SegmentationModel, export_segmenter

        self._check_fitted()
        model = SegmentationModel(self.class_names_, default_colors(self.class_names_), self.size,
                                  f"decoder/{self.stride}", {"stride": self.stride}, self.decoder_,
                                  Path(self.cache_dir_))
        return export_segmenter(model, path)
