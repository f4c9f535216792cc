"""Learned image filters (task ``image-to-image``): the output-image target and the photo modality it takes.

A sample is the input photo; its label is the output image the filter makes of it (an edge map, a
retouched photo …), a PNG of exactly the photo's size, greyscale or RGB. Clients send
``{"image": "<base64 PNG or data: URL>"}`` (see :mod:`dyntrain.codecs.pairs`; a JPEG, another size
or bad data is refused naming the problem). Like a mask, the output is kept as a blob, never inlined
in the annotation: its canonical PNG goes into the blob store beside the photos and the annotation
is ``{"image": <sha256 of that PNG>, "digest": <hash of the pixels>, "mode": "L" | "RGB"}`` — the
same output re-saved is the same JSON (no new version), a repainted one is a new version. There are
no classes: every sample's key is :data:`KEY`.

A project's outputs are greyscale or colour as its first pairs are: training takes the mode of the
first pair (by sample order) and converts any other (grey repeated, colour to luma), so a stray
RGB edge map does not stop training.

The model is one ONNX file: the photo's uint8 pixels at their own size in, the output image (uint8)
out; serving answers ``{"image": <base64 PNG>, "mode", "width", "height"}``. The prediction record's
JSON keeps the mode and size; where the project keeps prediction inputs, the output PNG is kept as
a blob beside the photo (``output["files"]["image"]``, served at ``…/predictions/{id}/files/image``
and shown beside the photo on the prediction's page), kept and forgotten with the photo.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

from .base import Answer, Target
from .boxes import PhotoModality

__all__ = ["FilterTarget", "PairPhotoModality", "KEY", "MIN_PAIRS"]

#: Every sample's key: a pair has no class.
KEY = "pair"
#: Fewest pairs a run trains on (three folds of at least one photo, plus one).
MIN_PAIRS = 4
#: Largest photo a filter takes (2048 x 2048): it runs at the photo's own resolution, and its
#: activations take about 128 bytes a pixel (16 float channels, two layers alive), 512 MB here.
MAX_PIXELS = 2048 * 2048
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"


def _db(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.1f} dB"


class FilterTarget(Target):
    name = "image"
    contract = "filter"
    has_classes = False
    output = "output"
    output_names = ("output",)
    output_files = ("image",)
    prediction_template = "_prediction_pairs.html"
    prediction_scripts = ()
    gate_metrics = ("psnr", "ssim")
    headline = "psnr"
    run_template = "_run_pairs.html"
    goal = "learn a picture-to-picture filter"

    # -- labels ----------------------------------------------------------------------------
    def validate_label(self, label: Any) -> str:
        """The key of every pair (a pair has no class)."""
        return KEY

    def read_label(self, raw: Any, meta: dict[str, Any]) -> tuple[str, Any]:
        """(:data:`KEY`, the annotation) of an output image as sent, checked against the photo's
        size in ``meta`` (nothing stored: see :meth:`stored_label`)."""
        annotation, _ = self._parse(raw, meta, None)
        return KEY, annotation

    def stored_label(self, raw: Any, meta: dict[str, Any], blobs) -> tuple[str, Any]:
        """:meth:`read_label`, with the output's canonical PNG put into ``blobs``; an output sent as
        the sha256 of a stored one (a stored annotation sent back) is read from there."""
        annotation, png = self._parse(raw, meta, blobs)
        if png is not None:
            annotation["image"] = blobs.put(png)
        return KEY, annotation

    def _parse(self, raw: Any, meta: dict[str, Any], blobs) -> tuple[dict, bytes | None]:
        from ..codecs import pairs
        from ..kernel.errors import Invalid
        from ..storage.blobs import sha256_hex

        if isinstance(raw, str):
            text = raw.strip()
            if not text.startswith("{"):
                raise Invalid(pairs.FORMAT)
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise Invalid(f"the output label is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(raw, dict) or "image" not in raw:
            raise Invalid(pairs.FORMAT)
        stored = raw["image"]
        kept = isinstance(stored, str) and _SHA256.match(stored)
        if kept:
            if blobs is None or not blobs.exists(stored):
                raise Invalid(f"output image {stored[:12]}… is not stored in this installation; send the PNG "
                              "itself (base64)")
            data = blobs.get(stored)
        else:
            data = pairs.png_from_text(stored)
        size = (int(meta["width"]), int(meta["height"])) if meta.get("width") and meta.get("height") else None
        pixels = pairs.read_output(data, size)
        png = None if kept else pairs.encode_png(pixels)
        annotation = {"image": stored if kept else sha256_hex(png), "digest": pairs.digest(pixels),
                      "mode": pairs.mode_of(pixels)}
        return annotation, png

    def label_classes(self, key: str, annotation: Any) -> set[str]:
        return set()

    def blob_refs(self, annotation: Any) -> list[str]:
        image = (annotation or {}).get("image") if isinstance(annotation, dict) else None
        return [image] if isinstance(image, str) and _SHA256.match(image) else []

    # -- files -----------------------------------------------------------------------------
    def read_files(self, path, *, max_bytes: int | None = None, format: str | None = None):
        """Photos in ``inputs/`` and their output images in ``outputs/`` (PNG, same stem), each
        output checked against its photo (a bad one is named with its file)."""
        from ..codecs.pairs import read_pairs

        for label, name, data in read_pairs(path, max_bytes=max_bytes):
            yield json.dumps(label), name, data

    def write_files(self, out, samples: list[dict], content, *, format: str | None = None) -> int:
        """``inputs/`` + ``outputs/`` (the output PNGs as stored)."""
        from ..codecs.pairs import write_pairs

        return write_pairs(out, samples, content)

    def training_stages(self):
        from ..training.pairs import PAIR_STAGES

        return PAIR_STAGES

    def counts(self, labels: list[str]) -> dict[str, int]:
        return {KEY: len(labels)} if labels else {}

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..kernel.errors import Invalid

        n = counts.get(KEY, 0)
        if n < MIN_PAIRS:
            raise Invalid(f"training needs at least {MIN_PAIRS} photos with their output images; there "
                          f"{'is' if n == 1 else 'are'} {n}. Add pairs.")

    def problem(self, label_counts: dict[str, int]) -> str | None:
        n = sum(label_counts.values())
        if n < MIN_PAIRS:
            return f"training needs at least {MIN_PAIRS} photos with their output images; there {'is' if n == 1 else 'are'} {n}"
        return None

    # -- gate --------------------------------------------------------------------------------
    def attach_blobs(self, samples: list[dict], load) -> list[dict]:
        """The samples with their true output images (in the run's mode) loaded from the blob store."""
        from ..codecs.pairs import as_mode, read_output

        return [{**p, "true_image": as_mode(read_output(load(p["true"]["image"])), p["predicted"]["mode"])}
                for p in samples]

    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        """PSNR and SSIM of the served file's output images against the truth."""
        from ..codecs.pairs import as_mode, mse, ssim

        said = [as_mode(o["image"], p["predicted"]["mode"]) for p, o in zip(samples, output)]
        return _scores([mse(p["true_image"], s) for p, s in zip(samples, said)],
                       [ssim(p["true_image"], s) for p, s in zip(samples, said)])

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        return _scores([p["predicted"]["mse"] for p in samples], [p["predicted"]["ssim"] for p in samples])

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        floor = float(floor or 0.0)
        what = "the photo itself in grey"
        shown = (lambda x: f"{x:.1f} dB") if metric == "psnr" else (lambda x: f"{x:.3f}")
        if score > floor:
            return True, f"first model: {metric} {shown(score)} ({what} as the output scores {shown(floor)})"
        return False, (f"{metric} {shown(score)}: no better than answering {what} ({shown(floor)}); add pairs")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        if metric == "psnr":  # decibels: the tolerance is a share of the old value
            score, before, tol = float(new[metric]), float(old[metric]), settings.gate_tolerance
            if score < before * (1 - tol):
                return (f"psnr would drop from {before:.2f} dB to {score:.2f} dB (more than the allowed "
                        f"{tol:.0%})")
            return None
        return self.dropped(new, old, metric, settings.gate_tolerance)

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        return (f"On {n} photos it had never seen, the model in service came within {_db(old.get('psnr'))} PSNR "
                f"(SSIM {old.get('ssim') or 0:.2f}) of the true outputs; the new one {_db(new.get('psnr'))} "
                f"(SSIM {new.get('ssim') or 0:.2f}): {outcome}.")

    def show_score(self, x: float | None) -> str:
        return _db(x)

    def estimate_words(self) -> tuple[str, str]:
        return "PSNR ", "photos"

    def run_view(self, result: dict, metrics: dict) -> dict | None:
        """The measures in words and the photos it did worst on (input, truth, output)."""
        psnr = metrics.get("psnr")
        err = metrics.get("mean_abs_error")
        words = []
        if err is not None:
            words.append(f"On new photos the output is within {err:.0%} of the true value per pixel on average "
                         f"(PSNR {_db(psnr)}; SSIM {metrics.get('ssim') or 0:.2f}, where 1 is identical).")
        edge = metrics.get("edge") or {}
        if edge.get("recall") is not None and edge.get("precision") is not None:
            words.append(f"As an edge map: it finds {edge['recall']:.0%} of the true edges to within a pixel, and "
                         f"{edge['precision']:.0%} of the edges it draws are real ones (edge F "
                         f"{edge.get('f') or 0:.2f}, where 1 is every edge and nothing else).")
        base = result.get("baseline") or {}
        if base.get("psnr") is not None and psnr is not None:
            words.append(f"Answering the photo itself in grey would score {_db(base['psnr'])} "
                         f"(SSIM {base.get('ssim') or 0:.2f}).")
        return {"sentences": words, "worst": metrics.get("worst") or [], "psnr": psnr, "ssim": metrics.get("ssim"),
                "interval": metrics.get("interval") or {}}

    # -- predictions -------------------------------------------------------------------------
    def split(self, raw, items: list, model) -> list[dict]:
        """Per photo: its output image cropped from the (padded) batch."""
        out = []
        for i, image in enumerate(items):
            h, w = image.shape[:2]
            y = raw[0][i, :h, :w]
            out.append({"image": np.ascontiguousarray(y[..., 0] if y.shape[2] == 1 else y)})
        return out

    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        from ..codecs.pairs import encode_png, mode_of

        pixels = output["image"]
        small = {"mode": mode_of(pixels), "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}
        png = encode_png(pixels)
        return Answer({"image": base64.b64encode(png).decode("ascii"), **small}, None, 0.0, stored=small,
                      files={"image": png})

    def cli_columns(self) -> list[str]:
        return ["output", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        return [f"{prediction.get('mode')} {prediction.get('width')}x{prediction.get('height')}",
                f"v{prediction['model_version']}"]

    def prediction_files(self, prediction: dict) -> dict[str, bytes]:
        return {".png": base64.b64decode(prediction["image"])} if prediction.get("image") else {}


def _scores(mses: list[float], ssims: list[float]) -> dict[str, Any]:
    """PSNR of the photos' mean squared error (see codecs.pairs.psnr_pooled) and their mean SSIM."""
    from ..codecs.pairs import psnr_pooled

    return {"psnr": psnr_pooled(mses) if mses else None, "ssim": float(np.mean(ssims)) if ssims else None,
            "n_images": len(mses)}


def _check_size(data: bytes) -> None:
    """Refuse a photo over :data:`MAX_PIXELS` from its header, before decoding it."""
    from ..codecs.box_formats import image_size
    from ..kernel.errors import Invalid

    w, h = image_size(data)
    if w * h > MAX_PIXELS:
        raise Invalid(f"the photo is {w}x{h} pixels; an image filter takes photos of up to {MAX_PIXELS:,} pixels "
                      "(it runs at the photo's own resolution): scale it down")


class PairPhotoModality(PhotoModality):
    """Photos at their own size (a filter is scale-dependent): the model takes them whole."""

    data_template = "_data_pairs.html"
    add_template = "_add_pairs.html"
    help_template = "_help_pairs.html"
    data_scripts = ("pairs.js",)
    try_template = "_try_pairs.html"
    try_script = "pairs.js"

    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        _check_size(data)
        return super().content_meta(settings, filename, data)

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000):
        _check_size(data)
        return super().decode(data, max_pixels=max_pixels)

    def columns(self, session) -> dict[str, Any]:
        meta = session.get_modelmeta().custom_metadata_map
        return {"mode": meta.get("mode", "L")}

    def feed(self, input_names: list[str], columns, items: list) -> dict[str, Any]:
        """One batch of the photos edge-padded to the largest: the served net repeats each photo's
        edge pixels itself before any convolution, so the padding changes no answer (each is
        cropped back to its photo by the target's ``split``)."""
        h = max(i.shape[0] for i in items)
        w = max(i.shape[1] for i in items)
        batch = np.stack([np.pad(i, ((0, h - i.shape[0]), (0, w - i.shape[1]), (0, 0)), mode="edge") for i in items])
        return {input_names[0]: batch}

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        from ..learners.candidates import Candidate

        # convolutions on the pixels: 3 layers (7 px seen: a Sobel-sized filter), then 5 (11 px: a
        # blur before the gradient, as Canny does), cheapest first for the one-SE rule
        return [Candidate("image.filter_cnn", {"layers": 3, "width": 16}),
                Candidate("image.filter_cnn", {"layers": 5, "width": 16})]

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        """The photos' pixels at their own size."""
        photos = np.empty(len(hashes), object)
        for i, h in enumerate(hashes):
            photos[i] = self.decode(load_blob(h))
            if progress is not None:
                progress((i + 1) / len(hashes))
        return {kind: photos for kind in kinds}

    def input_contract(self, onnx_path) -> dict[str, Any]:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        mode = self.columns(session)["mode"]
        return {"preprocessing": "none: the photo's own pixels, uint8 RGB, any size",
                "input": {"name": session.get_inputs()[0].name, "dtype": "uint8", "shape": [None, "H", "W", 3],
                          "layout": "NHWC RGB"},
                "outputs": {"output": f"uint8 [N, H, W, {1 if mode == 'L' else 3}] the output image ({mode})"}}
