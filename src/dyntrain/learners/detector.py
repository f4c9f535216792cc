"""The object-detection learner: the CenterNet-style head of :mod:`.detection_nets` on frozen Lite0
feature maps, behind the one learner contract (contract ``detector``).

``X`` is an object array of :class:`Photo` (pixels at most 640 px on the longer side, the scale
from original pixels, and where the backbone files live); ``y`` an object array of
``(boxes [k,4] x,y,w,h in ORIGINAL pixels, class indices [k])``. Predictions are per photo lists of
``{label_index, confidence, x, y, w, h}`` in original pixels, as serving decodes them. The model
file is one ONNX graph: ``image`` uint8 [N,S,S,3] letterboxed → ``boxes``, ``scores``, ``labels``.

Cross-validation reuses one :class:`~.detection_train.Bank` (backbone maps of every augmented copy)
for all folds: the backbone runs once per copy, each fold only trains a head (see
:func:`cross_validate`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Learner, register

__all__ = ["Photo", "CenterNetDetector", "PHOTO_KIND", "bank_for", "cross_validate", "to_original"]

#: The feature kind of photos for detection (see tasks.boxes.PhotoModality.features).
PHOTO_KIND = "image.photo"
#: The model's own operating threshold, written into the file: boxes below it are never answered.
OPERATING_THRESHOLD = 0.3
#: Lowest score serving decodes (the project's confidence threshold may only raise it).
DECODE_FLOOR = 0.05
#: Folds trained at once: one per core of the 2-core machines this is sized for (each head trains
#: on one thread); three folds take two rounds, and the second round's spare slot trains the head
#: the final fit needs (see cross_validate).
FOLD_WORKERS = 2


@dataclass(frozen=True, eq=False)
class Photo:
    """An image as detection trains on it: at most ``side`` px on its longer side."""

    pixels: np.ndarray  # uint8 HxWx3
    scale: float  # photo pixels per original pixel (1.0 when it was small enough)
    cache_dir: str = ""  # where the exported backbone feature maps live

    @property
    def original_size(self) -> list[int]:
        """[width, height] of the image it was made from."""
        h, w = self.pixels.shape[:2]
        return [round(w / self.scale), round(h / self.scale)]

    @classmethod
    def of(cls, image: np.ndarray, side: int, cache_dir: str = "") -> "Photo":
        from PIL import Image

        h, w = image.shape[:2]
        scale = min(1.0, side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        return cls(np.ascontiguousarray(image), scale, str(cache_dir))


# The banks of the last runs' photos: selection, evaluation and the nested folds of one run train
# many heads on the same photos; the backbone runs once per (photos, size, copies, seed). Holding
# the photos keeps their ids from being reused while their bank is kept.
_BANKS: "OrderedDict[tuple, tuple[list, Any]]" = OrderedDict()
_BANKS_MAX = 3
_banks_lock = threading.Lock()


def bank_for(photos, y, size: int, copies: int, seed: int, check=None, *, cache: bool = True):
    """The backbone maps of ``copies`` box-aware augmented copies of every photo (copy 0 as is)."""
    from .detection_train import build_bank

    photos, y = list(photos), list(y)
    key = (tuple(id(p) for p in photos), tuple(id(t) for t in y), size, copies, seed)
    with _banks_lock:
        if cache and key in _BANKS:
            _BANKS.move_to_end(key)
            return _BANKS[key][1]
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) * p.scale for p, (b, _) in zip(photos, y)]
    labels = [np.asarray(lab, np.int64) for _, lab in y]
    bank = build_bank([p.pixels for p in photos], boxes, labels, size=size, copies=copies,
                      cache_dir=photos[0].cache_dir, seed=seed, check=check)
    if not cache:
        return bank
    with _banks_lock:
        _BANKS[key] = ((photos, y), bank)
        while len(_BANKS) > _BANKS_MAX:
            _BANKS.popitem(last=False)
    return bank


def to_original(outputs, bank, index: int, photo: Photo, floor: float = DECODE_FLOOR) -> list[dict]:
    """One photo's raw head outputs (model pixels) as boxes in its original pixels."""
    from ..codecs.detections import decode

    h, w = photo.pixels.shape[:2]
    boxes = decode(outputs, float(bank.scales[index]), bank.pads[index], floor, size=(w, h))
    for b in boxes:
        for k in ("x", "y", "w", "h"):
            b[k] /= photo.scale
    return boxes


def cross_validate(params: dict[str, Any], photos, y, n_classes: int, folds, *, seed: int,
                   progress=None) -> list[list[dict]]:
    """Out-of-fold predictions (original pixels) for every photo tested in ``folds``, one bank for
    all of them: ``[(train, test)]`` index pairs; returns per fold the test photos' boxes.

    Folds train two at a time (each head on one thread: see train_head), and a fold's predictions
    are kept with the bank: the run's estimate scores the selection's folds again when selection
    scored one candidate only, and the gate's refit of the served configuration on the same folds
    is often the same head (same photos, fold, seed and passes: the same head, bit for bit)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from ._training import torch_threads
    from .detection_train import predict_bank

    learner = CenterNetDetector(**params)
    photos = list(photos)
    # one bank per run's photos, whatever the fold; each fold's head has the same seed for every
    # candidate, so candidates compare on equal terms
    bank = bank_for(photos, y, learner.size, learner.copies_for(len(photos)), 0)
    kept = bank.extra.setdefault("folds", {})

    def fold(k: int, train, test) -> list[dict]:
        key = (learner.passes, n_classes, seed + k, tuple(np.asarray(train).tolist()), tuple(np.asarray(test).tolist()))
        if key not in kept:
            head = head_for(bank, train, n_classes, seed + k, learner.passes)
            raw = predict_bank(head, bank, np.asarray(test))
            kept[key] = [to_original(r, bank, int(i), photos[int(i)]) for r, i in zip(raw, test)]
        return kept[key]

    out: list = [None] * len(folds)
    everything = np.arange(len(photos))
    tested = np.sort(np.concatenate([np.asarray(te) for _, te in folds])) if folds else everything
    # Folds over all the photos leave a worker idle in the last round (3 folds, 2 workers): the
    # head on all of them, which the final fit trains if this candidate wins, trains there.
    spare = len(folds) % FOLD_WORKERS and np.array_equal(tested, everything)
    with torch_threads(1), ThreadPoolExecutor(FOLD_WORKERS) as pool:
        if spare:
            pool.submit(head_for, bank, everything, n_classes, FIT_SEED, learner.passes)
        running = {pool.submit(fold, k, tr, te): k for k, (tr, te) in enumerate(folds)}
        for done, future in enumerate(as_completed(running)):
            out[running[future]] = future.result()
            if progress is not None:  # called here, on the caller's thread
                progress((done + 1) / len(folds))
    return [[[dict(b) for b in boxes] for boxes in fold] for fold in out]  # copies: callers may edit them


#: The seed of a final fit's head.
FIT_SEED = 0


def head_for(bank, images, n_classes: int, seed: int, passes: int, progress=None):
    """The head trained on ``images`` of ``bank``: trained once and kept with the bank, so the fold
    that a holdout run evaluates is the head it serves, and the spare slot's head is the final fit's
    (same bank, images, seed and passes: the same head, bit for bit). Threads asking at once wait
    for the one training it."""
    from .detection_train import train_head

    images = np.unique(np.asarray(images, np.int64))
    heads = bank.extra.setdefault("heads", {})
    key = (passes, n_classes, seed, tuple(images.tolist()))
    with bank.extra.setdefault("lock", threading.Lock()):
        entry, mine = heads.get(key), key not in heads
        if mine:
            entry = heads[key] = [threading.Event(), None]
    if mine:
        try:
            entry[1] = train_head(bank, images, n_classes, seed=seed, passes=passes, progress=progress)
        finally:
            entry[0].set()
    entry[0].wait()
    if entry[1] is None:  # the training it waited for failed: train here (and raise what it raises)
        with bank.extra["lock"]:
            heads.pop(key, None)
        return train_head(bank, images, n_classes, seed=seed, passes=passes, progress=progress)
    if progress is not None:
        progress(1.0)
    return entry[1]


def bank_holding(photos, y, size: int, seed: int, copies: int | None):
    """(a kept bank holding every one of ``photos`` with its boxes, their indices in it), or None: a
    holdout run's final fit trains on part of the photos the run's bank was built for."""
    with _banks_lock:
        for (ids, y_ids, bank_size, bank_copies, bank_seed), (_, bank) in reversed(_BANKS.items()):
            if (bank_size, bank_seed) != (size, seed) or copies not in (None, bank_copies):
                continue
            where = {pid: (i, yid) for i, (pid, yid) in enumerate(zip(ids, y_ids))}
            found = [where.get(id(p)) for p in photos]
            if all(f is not None and f[1] == id(t) for f, t in zip(found, y)):
                return bank, np.array([f[0] for f in found], np.int64)
    return None


@register
class CenterNetDetector(Learner):
    """A detection head on frozen Lite0 maps at input ``size`` (letterboxed), trained on ``copies``
    augmented copies of each photo for about ``passes`` copy-passes."""

    name = "image.centernet"
    input_kind = PHOTO_KIND
    contract = "detector"

    def __init__(self, *, size: int = 320, copies: int | None = None, passes: int = 2400) -> None:
        super().__init__()
        self.size = size
        self.copies = copies  # None: the measured rule (detection_fit.copies_for)
        self.passes = passes

    def copies_for(self, n_images: int) -> int:
        from .detection_fit import copies_for

        return int(self.copies or copies_for(n_images))

    def fit(self, X, y, *, n_classes: int, sample_weight=None, progress=None, seed: int = FIT_SEED,
            class_names: list[str] | None = None) -> "CenterNetDetector":

        if not len(X):
            from ..kernel.errors import Invalid

            raise Invalid("no images to train the detector on")
        held = bank_holding(list(X), list(y), self.size, 0, self.copies)
        if held is None:
            held = bank_for(X, y, self.size, self.copies_for(len(X)), 0), np.arange(len(X))
        self.head_ = head_for(*held, n_classes, seed, self.passes, progress)
        self.cache_dir_ = X[0].cache_dir
        self.n_classes_ = n_classes
        self.class_names_ = list(class_names or (str(k) for k in range(n_classes)))
        return self

    def predict(self, X) -> list[list[dict]]:
        """Boxes per photo, in original pixels, decoded as serving decodes the exported file."""
        from .detection_train import predict_bank

        self._check_fitted()
        photos = list(X)
        bank = bank_for(photos, [(np.zeros((0, 4)), np.zeros(0, np.int64))] * len(photos), self.size, 1, 0,
                        cache=False)
        raw = predict_bank(self.head_, bank, np.arange(len(photos)))
        return [to_original(r, bank, i, p, OPERATING_THRESHOLD) for i, (r, p) in enumerate(zip(raw, photos))]

    def predict_proba(self, X):
        from ..kernel.errors import Invalid

        raise Invalid(f"{self.name} is a detector: it answers boxes (predict()), not class probabilities")

    def export_onnx(self, path: str | Path, *, backbone_dir: str | Path) -> Path:
        """One graph: letterboxed uint8 image → boxes, scores, labels; the input size, the classes and
        the operating threshold in its metadata (serving reads them); see detection_fit.export_detector."""
        from .detection_fit import Candidate, DetectorModel, export_detector

        self._check_fitted()
        model = DetectorModel(self.head_, Candidate(f"head-{self.size}", self.size), self.class_names_,
                              OPERATING_THRESHOLD, Path(self.cache_dir_))
        return export_detector(model, path)
