"""Semantic segmentation: a small decoder over the frozen Lite0 feature maps, chosen by CV.

Training (:func:`fit_segmenter`):

1. **Views.** Each image is letterboxed to ``size`` x ``size`` (aspect kept, grey padding; the
   padding's mask is unlabelled, so it is never learnt). Besides the photo itself, each image
   gets ``augment_views`` augmented copies: geometric changes (flip, zoom / crop, a small
   rotation) applied to image *and* mask together, photometric ones (brightness, contrast,
   colour) to the image only. The changes are drawn from the image's content hash, so the same
   image always gets the same copies and their features can be cached.
2. **Features.** The frozen backbone (:mod:`.feature_maps`) runs once per view and its four
   maps are cached on disk by content (``cache_dir``), so a retrain embeds only new images.
3. **Selection.** Candidates (:data:`CANDIDATES`: the decoder with output stride 8, or 4 using
   the finest map too) are scored by the mean IoU of repeated K-fold cross-validation, measured
   on the held-out photos at their original size (exactly as served). Folds run candidate
   after candidate, so a time budget cut leaves every candidate with the same folds; repeats
   continue while the budget allows. A candidate whose lead is within one standard error of
   the folds loses to the cheaper one (the selection rule of :mod:`.selection`).
4. **Fit and export.** The winner is trained on every image and exported as ONE ONNX file:
   input ``image`` uint8 NHWC [N,S,S,3] (letterboxed, see :func:`preprocess`), outputs
   ``mask`` int64 [N,S,S] (argmax inside) and ``probabilities`` float32 [N,C,S,S]. Serving
   needs ONNX Runtime and NumPy only: :func:`preprocess` then :func:`decode`.

>>> model, report = fit_segmenter(images, masks, ["background", "cup"], cache_dir=d, time_budget_s=60)  # doctest: +SKIP
>>> export_segmenter(model, "model.onnx")  # doctest: +SKIP
>>> batch, info = preprocess(photo, model.size)  # doctest: +SKIP
>>> mask = decode(session.run(None, {"image": batch}), info, photo.shape[1::-1])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from ..kernel.errors import Invalid
from ..codecs.masks import UNLABELLED, check_class_table, check_mask
from . import feature_maps as fm
from ..codecs import letterbox as lb
from .segmentation_metrics import confusion, segmentation_metrics

__all__ = [
    "CANDIDATES",
    "DEFAULT_SIZE",
    "INPUT_NAME",
    "MASK_OUTPUT",
    "PROBABILITIES_OUTPUT",
    "SegmentationModel",
    "fit_segmenter",
    "export_segmenter",
    "preprocess",
    "decode",
    "decode_probabilities",
    "segmentation_metrics",
    "onnx_metadata",
]

INPUT_NAME = "image"
MASK_OUTPUT = "mask"
PROBABILITIES_OUTPUT = "probabilities"
# Candidates, cheapest first (the one-standard-error rule prefers earlier ones).
CANDIDATES: dict[str, dict[str, Any]] = {
    "decoder/8": {"stride": 8},
    "decoder/4": {"stride": 4},
}
DEFAULT_SIZE = 320
# Bump when the augmented views change: it is part of every cached view's key.
AUGMENT_VERSION = "a1"
# One torch thread: on a shared 2-core machine two threads were measured several times slower
# for these small convolutions (the other core is busy with serving or another job).
TORCH_THREADS = 1
FEATURE_BATCH = 8
# Fewer passes than this learnt little in the measurements; a tighter budget is overrun instead.
MIN_EPOCHS = 4

ProgressFn = Callable[[float], None]


@dataclass
class SegmentationModel:
    """A fitted segmenter: the decoder (torch) plus what serving and export need."""

    class_names: list[str]
    colors: dict[str, list[int]]
    size: int
    candidate: str
    params: dict[str, Any]
    decoder: Any = field(repr=False)
    cache_dir: Path = field(repr=False)

    def predict(self, images: Sequence[Any], *, threads: int = 2) -> list[np.ndarray]:
        """Masks (uint8 class ids) at each image's original size, with torch (tests, evaluation)."""
        from . import _training
        from .segmentation_nets import predict_masks

        arrays = [_rgb(im) for im in images]
        prepared = [preprocess(a, self.size) for a in arrays]
        infos = [p[1] for p in prepared]
        batch = np.concatenate([p[0] for p in prepared]) if arrays else np.zeros((0, self.size, self.size, 3), np.uint8)
        feats = _run_backbone(self.cache_dir, self.size, batch, threads)
        with _training.torch_threads(TORCH_THREADS):
            masks = predict_masks(self.decoder, feats, self.size)
        return [decode({MASK_OUTPUT: m}, info, (a.shape[1], a.shape[0])) for m, info, a in zip(masks, infos, arrays)]


# --- serving (numpy only) ------------------------------------------------------------------------


def preprocess(image: Any, size: int) -> tuple[np.ndarray, tuple[float, int, int]]:
    """A photo (uint8 HxWx3 array or PIL image) -> (uint8 [1,S,S,3] batch, letterbox info)."""
    batch, scale, pad_x, pad_y = lb.letterbox(_rgb(image), int(size))
    return batch, (scale, pad_x, pad_y)


def _outputs(outputs: Any) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return outputs
    outputs = list(outputs)
    return {MASK_OUTPUT: outputs[0], **({PROBABILITIES_OUTPUT: outputs[1]} if len(outputs) > 1 else {})}


def decode(outputs: Any, letterbox_info: tuple[float, int, int], original_size: tuple[int, int]) -> np.ndarray:
    """The served ``mask`` of ONE image mapped back onto the original photo (letterbox undone).

    ``outputs``: the session's outputs (list in output order, or a dict by name) for a batch of
    one, or that image's ``mask`` [S,S] alone; ``original_size`` is ``(width, height)``.
    Returns uint8 [height, width] class ids.
    """
    mask = np.asarray(_outputs(outputs)[MASK_OUTPUT])
    if mask.ndim == 3:
        if mask.shape[0] != 1:
            raise Invalid(f"decode() takes one image's outputs, got a batch of {mask.shape[0]}: decode each")
        mask = mask[0]
    scale, pad_x, pad_y = letterbox_info
    width, height = (int(v) for v in original_size)
    return lb.map_to_original(mask, scale, pad_x, pad_y, width, height, nearest=True).astype(np.uint8)


def decode_probabilities(outputs: Any, letterbox_info: tuple[float, int, int],
                         original_size: tuple[int, int]) -> np.ndarray:
    """The served ``probabilities`` of ONE image as float32 [C, height, width] (bilinear)."""
    probs = np.asarray(_outputs(outputs)[PROBABILITIES_OUTPUT])
    if probs.ndim == 4:
        probs = probs[0]
    scale, pad_x, pad_y = letterbox_info
    width, height = (int(v) for v in original_size)
    out = lb.map_to_original(np.moveaxis(probs, 0, -1), scale, pad_x, pad_y, width, height)
    return np.ascontiguousarray(np.moveaxis(out.reshape(height, width, -1), -1, 0), dtype=np.float32)


def onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """What :func:`export_segmenter` recorded in the file: classes, colours, input size, candidate."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props.get("dyntrain.segmentation", "{}"))


# --- training --------------------------------------------------------------------------------------


def _rgb(image: Any) -> np.ndarray:
    if isinstance(image, (bytes, bytearray)):
        from ..codecs.imaging import decode_image

        image = decode_image(bytes(image))
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise Invalid(f"an image must be uint8 RGB (height, width, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def _content_id(image: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(image.shape).encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _view_params(content: str, view: int) -> dict[str, Any] | None:
    """Augmentation of ``view`` (0 = the photo itself), drawn from the image's content hash."""
    if view == 0:
        return None
    rng = np.random.default_rng([int(content[:15], 16), view])
    return {
        "flip": bool(rng.random() < 0.5),
        "angle": float(rng.uniform(-12, 12)),
        # zoom > 1 crops into the photo, < 1 shows it smaller with a border (unlabelled)
        "zoom": float(np.exp(rng.uniform(np.log(0.75), np.log(1.5)))),
        "shift": (float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.15))),
        "brightness": float(rng.uniform(0.7, 1.3)),
        "contrast": float(rng.uniform(0.7, 1.3)),
        "color": float(rng.uniform(0.6, 1.4)),
    }


def _augment(image: np.ndarray, mask: np.ndarray, p: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Geometric changes to image and mask together, photometric to the image only."""
    if p is None:
        return image, mask
    img = Image.fromarray(image)
    msk = Image.fromarray(mask, "L")
    w, h = img.size
    # One affine map for both (output pixel -> input pixel): rotate and zoom about the centre, shift.
    a = math.radians(p["angle"])
    z = p["zoom"]
    cos, sin = math.cos(a) / z, math.sin(a) / z
    cx, cy = w / 2, h / 2
    tx, ty = p["shift"][0] * w, p["shift"][1] * h
    coeffs = (cos, sin, cx - cos * cx - sin * cy + tx, -sin, cos, cy + sin * cx - cos * cy + ty)
    img = img.transform((w, h), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(lb.PAD_VALUE,) * 3)
    msk = msk.transform((w, h), Image.AFFINE, coeffs, resample=Image.NEAREST, fillcolor=UNLABELLED)
    if p["flip"]:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        msk = msk.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(p["brightness"])
    img = ImageEnhance.Contrast(img).enhance(p["contrast"])
    img = ImageEnhance.Color(img).enhance(p["color"])
    return np.asarray(img), np.asarray(msk)


def _letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """The mask placed exactly where :func:`lb.letterbox` puts its image."""
    h, w = mask.shape
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size), UNLABELLED, np.uint8)
    resized = mask if (nw, nh) == (w, h) else np.asarray(Image.fromarray(mask, "L").resize((nw, nh), Image.NEAREST))
    out[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return out


def _run_backbone(cache_dir: Path, size: int, batch: np.ndarray, threads: int) -> list[np.ndarray]:
    sess = fm.session(fm.export_feature_maps(cache_dir, size), threads=threads)
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for i in range(0, len(batch), FEATURE_BATCH):
        for k, out in enumerate(sess.run(list(fm.OUTPUTS), {INPUT_NAME: batch[i:i + FEATURE_BATCH]})):
            parts[k].append(out)
    return [np.concatenate(p) if p else np.zeros((0,), np.float32) for p in parts]


class _ViewCache:
    """Feature maps of letterboxed views on disk, keyed by backbone file, view and content.

    float16 on disk and in memory: halves both, and the decoder's result did not change
    measurably (the maps are post-activation values of modest range).
    """

    def __init__(self, cache_dir: Path, size: int, threads: int) -> None:
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.threads = threads
        self.path = fm.export_feature_maps(cache_dir, size)
        self.dir = self.cache_dir / "segmentation-views" / f"{self.path.stem}-{AUGMENT_VERSION}"
        self.computed = 0

    def _file(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npz"

    def features(self, keys: list[str], views: list[np.ndarray], progress: ProgressFn | None = None) -> list[np.ndarray]:
        from ..storage.files import atomic_write

        out: list[list[np.ndarray] | None] = [None] * len(keys)
        missing = []
        for i, key in enumerate(keys):
            f = self._file(key)
            if f.is_file():
                try:
                    with np.load(f) as z:
                        out[i] = [z[name] for name in fm.OUTPUTS]
                    continue
                except (OSError, ValueError, KeyError):
                    pass  # a torn or foreign file: recompute it
            missing.append(i)
        for start in range(0, len(missing), FEATURE_BATCH):
            chunk = missing[start:start + FEATURE_BATCH]
            maps = _run_backbone(self.cache_dir, self.size, np.stack([views[i] for i in chunk]), self.threads)
            for j, i in enumerate(chunk):
                arrays = [m[j].astype(np.float16) for m in maps]
                out[i] = arrays
                buf = io.BytesIO()
                np.savez(buf, **dict(zip(fm.OUTPUTS, arrays)))
                atomic_write(self._file(keys[i]), buf.getvalue(), fsync=False)
                self.computed += 1
            if progress is not None:
                progress(min(1.0, (start + len(chunk)) / len(missing)))
        return [np.stack([o[k] for o in out]) for k in range(4)]  # type: ignore[index]


def _check_inputs(images, masks, class_names, colors):
    table = check_class_table(class_names, colors)
    if len(images) != len(masks):
        raise Invalid(f"{len(images)} images but {len(masks)} masks; each image needs its mask")
    if len(images) < 2:
        raise Invalid(f"segmentation needs at least 2 annotated images to train (got {len(images)})")
    arrays = [_rgb(im) for im in images]
    checked = [check_mask(m, len(table), image_size=(a.shape[1], a.shape[0]), name=f"mask {i}")
               for i, (a, m) in enumerate(zip(arrays, masks))]
    if all((m == UNLABELLED).all() for m in checked):
        raise Invalid("every mask is unlabelled: paint at least some pixels with their class")
    return table, arrays, checked


def build_views(arrays: Sequence[np.ndarray], masks: Sequence[np.ndarray], size: int, views: int, cache_dir: Path,
                threads: int, progress: ProgressFn | None = None):
    """The letterboxed views of each image (view 0 the photo itself, then ``views - 1`` augmented
    copies; image-major rows) with their backbone maps, cached on disk by content: returns
    (features [s4, s8, s16, s32], view masks [N*views,S,S], each photo's letterbox info, how many
    views the backbone had to run on)."""
    cache = _ViewCache(Path(cache_dir), int(size), threads)
    keys, batch, view_masks, infos = [], [], [], []
    for a, m in zip(arrays, masks):
        content = _content_id(a)
        for v in range(views):
            img_v, mask_v = _augment(a, m, _view_params(content, v))
            b, scale, pad_x, pad_y = lb.letterbox(img_v, int(size))
            keys.append(hashlib.sha256(f"{content}/{v}".encode()).hexdigest())
            batch.append(b[0])
            view_masks.append(_letterbox_mask(mask_v, int(size)))
            if v == 0:
                infos.append((scale, pad_x, pad_y))
    features = cache.features(keys, batch, progress=progress)
    return features, np.stack(view_masks), infos, cache.computed


def _folds(n: int, k: int, repeat: int, seed: int) -> list[np.ndarray]:
    """Test indices of K folds for one repeat (a fresh shuffle per repeat)."""
    order = np.random.default_rng([seed, repeat]).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


def _rows(n_images: int, views: int, images: np.ndarray) -> np.ndarray:
    # Feature rows are image-major: image i's views are rows i*views .. i*views + views-1.
    return (images[:, None] * views + np.arange(views)[None, :]).reshape(-1)


def fit_segmenter(
    images: Sequence[Any],
    masks: Sequence[np.ndarray],
    class_names: Sequence[str],
    *,
    cache_dir: str | os.PathLike,
    time_budget_s: float,
    progress: ProgressFn | None = None,
    seed: int = 0,
    colors: dict[str, Sequence[int]] | None = None,
    candidates: Sequence[str] | None = None,
    size: int = DEFAULT_SIZE,
    augment_views: int = 2,
    folds: int = 3,
    max_repeats: int = 3,
    epochs: int | None = None,
    threads: int = 2,
) -> tuple[SegmentationModel, dict[str, Any]]:
    """Select and fit a segmenter (see the module doc). Returns ``(model, report)``.

    ``images``: uint8 RGB arrays, PIL images or encoded bytes; ``masks``: uint8 class ids of each
    image's size (255 = unlabelled, ignored); ``class_names[i]`` names id ``i``.
    ``time_budget_s`` bounds the whole call: cross-validation stops before a fold whose fits,
    plus the final fit, are estimated (from the folds so far) to overrun it. The first fold
    always runs, so every candidate has a score; a tiny budget can therefore be exceeded.
    With ``epochs=None`` the passes are planned from the training speed measured at the start
    (``epochs_default`` unless one round of folds plus the final fit would overrun, never fewer
    than :data:`MIN_EPOCHS`), and the final fit takes fewer if the folds ran slower than planned.
    ``progress(fraction)`` may raise ``Cancelled`` to stop cooperatively.

    The report: ``selected``, ``rule``, ``candidates`` (per candidate: fold mIoUs, mean,
    standard error, seconds), ``cv`` (folds, repeats done, whether the budget cut it),
    ``cv_metrics`` (the selected candidate's out-of-fold :func:`segmentation_metrics`, first
    repeat), ``epochs`` (CV folds), ``epochs_default``, ``final_epochs``, ``views``, ``size``,
    ``images``, ``features_computed``, ``curves`` of the final fit and ``seconds`` per stage.
    """
    from . import _training
    from .segmentation_nets import predict_masks, train_decoder

    t0 = time.perf_counter()
    budget = float(time_budget_s)
    names = list(candidates or CANDIDATES)
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        raise Invalid(f"unknown segmentation candidates {unknown}; choose from {list(CANDIDATES)}")
    table, arrays, checked = _check_inputs(images, masks, class_names, colors)
    n_classes = len(table)
    n = len(arrays)
    views = 1 + max(0, int(augment_views))
    report_progress = progress or (lambda f: None)

    # 1. Views (image-major rows) and their features (cached on disk by content).
    t_feat = time.perf_counter()
    features, view_masks_arr, infos, computed = build_views(arrays, checked, int(size), views, Path(cache_dir),
                                                            threads, progress=lambda f: report_progress(0.25 * f))
    seconds = {"features": time.perf_counter() - t_feat}

    # 2. Epochs: about 900 sample-steps per fit (fewer passes for larger sets, each has more
    # steps), so CV folds and the final fit train alike; fewer when one round of folds plus the
    # final fit would not fit the budget at the speed measured now (the machine may be busy).
    k = int(min(max(2, folds), n))
    default_epochs = int(np.clip(round(900 / (n * views)), 8, 30))
    per_sample: dict[str, float] = {}
    auto_epochs = epochs is None
    if auto_epochs:
        from .segmentation_nets import seconds_per_sample

        with _training.torch_threads(TORCH_THREADS):
            for cand in names:
                per_sample[cand] = seconds_per_sample(features, view_masks_arr, n_classes=n_classes,
                                                      stride=CANDIDATES[cand]["stride"])
        cv_share = (k - 1) / k if len(names) > 1 else 0.0
        epoch_s = n * views * (sum(per_sample.values()) * cv_share + max(per_sample.values()))
        left = budget - (time.perf_counter() - t0)
        epochs = int(np.clip(int(0.85 * left / epoch_s), MIN_EPOCHS, default_epochs))

    def fit(rows: np.ndarray, cand: str, fit_seed: int, progress_fn=None, n_epochs: int | None = None):
        with _training.torch_threads(TORCH_THREADS):
            return train_decoder([f[rows] for f in features], view_masks_arr[rows], n_classes=n_classes,
                                 stride=CANDIDATES[cand]["stride"], epochs=n_epochs or epochs, seed=fit_seed,
                                 progress=progress_fn)

    def evaluate(decoder, test: np.ndarray) -> list[np.ndarray]:
        rows = test * views  # view 0 = the photo itself
        with _training.torch_threads(TORCH_THREADS):
            pred = predict_masks(decoder, [f[rows] for f in features], int(size))
        return [lb.map_to_original(p, *infos[i], arrays[i].shape[1], arrays[i].shape[0], nearest=True).astype(np.uint8)
                for p, i in zip(pred, test)]

    # 3. Repeated K-fold CV, cut between folds by the budget.
    scores: dict[str, list[float]] = {c: [] for c in names}
    fit_seconds: dict[str, list[float]] = {c: [] for c in names}
    oof: dict[str, list[np.ndarray | None]] = {c: [None] * n for c in names}
    repeats_done, units_done, cut = 0, 0, False
    t_cv = time.perf_counter()
    total_units = k * max_repeats if len(names) > 1 else 0
    for repeat in range(max_repeats if len(names) > 1 else 0):
        for fold, test in enumerate(_folds(n, k, repeat, seed)):
            train_rows = _rows(n, views, np.setdiff1d(np.arange(n), test))
            # Would this unit and the final fit still fit? (Unknown before the first unit: run it
            # unless the final fit alone is already estimated to use what is left.)
            elapsed = time.perf_counter() - t0
            unit = sum(per_sample.get(c, 0.0) for c in names) * len(train_rows) * epochs
            final = max(per_sample.values(), default=0.0) * n * views * epochs
            if units_done and elapsed + unit + final > budget:
                cut = True
                break
            for cand in names:
                ts = time.perf_counter()
                decoder, _ = fit(train_rows, cand, seed + 1000 * repeat + fold)
                took = time.perf_counter() - ts
                fit_seconds[cand].append(took)
                per_sample[cand] = took / (len(train_rows) * epochs)
                pred = evaluate(decoder, test)
                cm = sum(confusion(checked[i], p, n_classes) for i, p in zip(test, pred))
                scores[cand].append(_miou_of(cm))
                if repeat == 0:
                    for i, p in zip(test, pred):
                        oof[cand][i] = p
            units_done += 1
            report_progress(0.25 + 0.55 * units_done / max(1, total_units))
        else:
            repeats_done += 1
            continue
        break
    seconds["cross_validation"] = time.perf_counter() - t_cv

    # 4. Select: best mean mIoU; a lead within one standard error goes to the cheaper candidate.
    summary = {}
    for cand in names:
        s = np.array(scores[cand], dtype=np.float64)
        summary[cand] = {
            "stride": CANDIDATES[cand]["stride"],
            "fold_miou": [round(float(v), 4) for v in s],
            "miou_mean": float(s.mean()) if len(s) else None,
            "miou_se": float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else None,
            "fit_seconds_mean": float(np.mean(fit_seconds[cand])) if fit_seconds[cand] else None,
        }
    selected, rule = _select(names, summary)

    # 5. Final fit on every view of every image; with automatic epochs, fewer passes if the folds
    # ran slower than planned (the speed measured on them says what still fits).
    final_epochs = int(epochs)
    if auto_epochs and per_sample.get(selected):
        left = budget - (time.perf_counter() - t0)
        final_epochs = int(np.clip(int(0.95 * left / (per_sample[selected] * n * views)), MIN_EPOCHS, epochs))
    t_fit = time.perf_counter()
    all_rows = np.arange(n * views)
    decoder, curves = fit(all_rows, selected, seed, progress_fn=lambda f: report_progress(0.8 + 0.2 * f),
                          n_epochs=final_epochs)
    seconds["fit"] = time.perf_counter() - t_fit
    seconds["total"] = time.perf_counter() - t0

    cv_metrics = None
    done = [i for i in range(n) if oof[selected][i] is not None]
    if done:
        cv_metrics = segmentation_metrics([checked[i] for i in done], [oof[selected][i] for i in done],
                                          list(table))
        cv_metrics["image_indices"] = done
    model = SegmentationModel(class_names=list(table), colors={k_: list(v) for k_, v in table.items()},
                              size=int(size), candidate=selected, params=dict(CANDIDATES[selected]),
                              decoder=decoder, cache_dir=Path(cache_dir))
    report = {
        "selected": selected,
        "rule": rule,
        "candidates": summary,
        "cv": {"folds": k, "repeats_done": repeats_done, "fold_rounds": units_done, "cut_by_budget": cut,
               "time_budget_s": budget},
        "cv_metrics": cv_metrics,
        "epochs": int(epochs),
        "epochs_default": default_epochs,
        "final_epochs": final_epochs,
        "views": views,
        "size": int(size),
        "images": n,
        "features_computed": computed,
        "curves": curves,
        "seconds": seconds,
    }
    return model, report


def _miou_of(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else 0.0


def _select(names: list[str], summary: dict[str, dict]) -> tuple[str, str]:
    scored = [c for c in names if summary[c]["miou_mean"] is not None]
    if not scored:
        # Nothing cross-validated (one candidate, or no time): the finest decoder is the default.
        only = names[-1] if len(names) > 1 else names[0]
        return only, "only candidate" if len(names) == 1 else "no cross-validation within the budget: default"
    best = max(scored, key=lambda c: summary[c]["miou_mean"])
    se = summary[best]["miou_se"] or 0.0
    for c in scored:  # cheapest first
        if summary[c]["miou_mean"] >= summary[best]["miou_mean"] - se:
            if c != best:
                return c, f"{c} within one standard error of {best}: the cheaper one"
            return c, "highest cross-validated mIoU"
    return best, "highest cross-validated mIoU"


# --- export -----------------------------------------------------------------------------------------


def export_segmenter(model: SegmentationModel, path: str | os.PathLike) -> Path:
    """Write ONE ONNX file: ``image`` uint8 [N,S,S,3] -> ``mask`` int64 [N,S,S], ``probabilities``.

    The frozen backbone part is the very file the training features came from; the class
    table, colours, input size and candidate are stored as metadata (:func:`onnx_metadata`).
    """
    import onnx
    from onnx import compose, utils

    from ..storage.files import atomic_write
    from . import _nets
    from .segmentation_nets import onnx_head_bytes

    backbone = onnx.load(str(fm.export_feature_maps(model.cache_dir, model.size)))
    head = onnx.load_from_string(onnx_head_bytes(model.decoder, model.size, _nets.OPSET))
    head = compose.add_prefix(head, "head/", rename_outputs=False)
    used = [i.name for i in head.graph.input]  # the stride-8 decoder does not take s4
    trunk = utils.Extractor(backbone).extract_model([INPUT_NAME], [u[len("head/"):] for u in used])
    merged = compose.merge_models(trunk, head, io_map=[(u[len("head/"):], u) for u in used],
                                  outputs=[MASK_OUTPUT, PROBABILITIES_OUTPUT], producer_name="dyntrain")
    meta = {"task": "semantic-segmentation", "class_names": model.class_names, "colors": model.colors,
            "size": model.size, "candidate": model.candidate, "input": INPUT_NAME,
            "outputs": [MASK_OUTPUT, PROBABILITIES_OUTPUT]}
    entry = merged.metadata_props.add()
    entry.key, entry.value = "dyntrain.segmentation", json.dumps(meta, sort_keys=True)
    onnx.checker.check_model(merged)
    return atomic_write(Path(path), merged.SerializeToString())
