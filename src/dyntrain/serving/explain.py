"""Why the model said what it said: heatmaps for image predictions, word weights for texts.

Three methods, all on ONNX Runtime and NumPy alone (serving never imports torch):

* ``cam`` — a class activation map, for models whose head is a linear layer on L2-normalised,
  globally averaged backbone features (the linear probe on EfficientNet-Lite0). It is *exact*:
  the 7×7 cells add up to the predicted class's logit minus the head's bias (the map shown is the
  class's map minus the mean of all classes' maps: the softmax sees only differences). It is computed from
  the model file the registry holds, not a second export: the file's shared trunk gets the
  feature map before pooling as an extra output, and the head's own logits (the input of its
  Softmax) another, both by editing the protobuf wire format like :mod:`.trunks` (no ``onnx``
  package). The head's weights are never read: a head ``z(x) = W·x/‖x‖ + b`` gives
  ``W·f = (z(f) - z(0))·‖f‖`` for any cell vector ``f``, so one batched head run over the 49
  cells yields every cell's contribution — checked on random vectors before a model is
  explained, so a head of any other form is refused instead of explained wrongly.
* ``occlusion`` — for every image learner (classifiers, detectors, segmenters): a grey patch (the
  normalisation's mean, 127) over each cell of a 7×7 grid of the decoded image, batched; a cell's
  heat is how much covering it lowers the score of what was predicted (the class's probability,
  the confidence of the top box's object, or the share of the largest painted area still painted).
* ``words`` — leave-one-out for texts: each word (or, in long texts, each sentence) removed in
  turn, all variants in batches; a span's weight is how much removing it lowers the predicted
  class's probability (or moves a number).

Occlusion and leave-one-out cost tens of model runs, so they go through :class:`ExplainQueue`:
one worker thread on a one-thread ONNX Runtime session (at most one core of a 2-core server),
a bounded queue, a per-caller rate limit and a cache per (model version, input hash). A refused
or unavailable explanation never fails the prediction it belongs to: the prediction answers
with ``explanation.status`` and the reason.

>>> attach(core, "shop", results, [("a.jpg", data)], "cam", caller="token:3")  # doctest: +SKIP
>>> results[0]["explanation"]["summary"]  # doctest: +SKIP
'the upper left of the image mattered most for mug'
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..kernel.errors import DyntrainError, Gone, Invalid
from .trunks import TrunkCache, _field, _fields, _string, _varint_bytes, split_composed

__all__ = ["METHODS", "CamExplainer", "ExplainQueue", "attach", "explain_prediction", "cam_map", "occlusion_map",
           "leave_one_out", "heat_png", "describe", "explanation_for", "queue_for"]

log = logging.getLogger(__name__)

METHODS = ("auto", "cam", "occlusion", "words")  # auto: cam where exact, else occlusion
# How long ``GET …/predictions/{id}/explanation`` holds its request for an explanation still in the
# queue before answering ``pending`` (202: ask again, the answer is cached). Short on purpose: a
# browser has six connections per host, shared by its tabs and their live event streams, and the
# server one pool of worker threads. Held for 20 s (as ``?explain=`` on /predict still waits), the
# Try page's explanation requests filled those six when a few photos were tried in a row, and the
# next photo's prediction waited in the browser for one to free (measured: 19 s in Chromium, while
# the same prediction sent outside the browser answered in 0.05 s).
RECORDED_WAIT_S = 2.0
GRID = 7  # occlusion cells per side: 49 runs (14×14 = 196 runs, four times the cost, measured)
GREY = 127  # the backbone's normalisation mean: an occluded cell feeds zeros to the network
_BATCH = 8  # occluded copies per ONNX Runtime run
_OCCLUSION_SIDE = 640  # larger photos are occluded at this size (detectors see at most 320 px of them)
_MAX_SPANS = 64  # leave-one-out over words up to this many; sentences beyond it

# ONNX field numbers (onnx.proto3; protobuf never renumbers them)
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_OUTPUT = 7, 1, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP = 1, 2, 4


# -- editing a model's outputs on the wire ---------------------------------------------------------
def _nodes(buf: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op_type, inputs, outputs) of each node of the model's main graph."""
    out = []
    for number, _, vs, ve in _fields(buf, 0, len(buf)):
        if number != _MODEL_GRAPH:
            continue
        for gnum, _, ns, ne in _fields(buf, vs, ve):
            if gnum != _GRAPH_NODE:
                continue
            op, ins, outs = "", [], []
            for n, _, fs, fe in _fields(buf, ns, ne):
                if n == _NODE_OP:
                    op = _string(buf, fs, fe)
                elif n == _NODE_INPUT:
                    ins.append(_string(buf, fs, fe))
                elif n == _NODE_OUTPUT:
                    outs.append(_string(buf, fs, fe))
            out.append((op, ins, outs))
    return out


def _with_outputs(buf: bytes, names: list[str]) -> bytes:
    """The same model with ``names`` (tensors inside its graph) as extra graph outputs; their
    types are left to ONNX Runtime's inference, which knows every intermediate tensor's type."""
    parts: list = []
    for number, first, vs, ve in _fields(buf, 0, len(buf)):
        if number != _MODEL_GRAPH:
            parts.append(buf[first:ve])
            continue
        extra = b"".join(b"".join(_field(_GRAPH_OUTPUT, b"".join(_field(1, n.encode())))) for n in names)
        graph = buf[vs:ve] + extra
        parts.append(_varint_bytes(_MODEL_GRAPH << 3 | 2) + _varint_bytes(len(graph)) + graph)
    return b"".join(parts)


# -- class activation maps -------------------------------------------------------------------------
_CAM_TRUNKS = TrunkCache()  # trunk sessions that also output the feature map, shared by content
class NotExplainable(DyntrainError):
    code = "invalid"


@dataclass
class CamExplainer:
    """Exact class activation maps of one model file (see the module docstring).

    ``trunk`` runs image → (feature map [N,C,H,W], pooled [N,C]); ``head`` runs pooled-like
    vectors → (logits, probabilities)."""

    trunk: Any
    head: Any
    fmap: str
    cut: str
    logits: str
    output: str

    @classmethod
    def from_bytes(cls, data: bytes, threads: int = 1) -> "CamExplainer":
        import onnxruntime as ort

        from ..kernel.onnx_session import session_options

        split = split_composed(data)
        if split is None:
            raise NotExplainable("this model is not a pretrained backbone with its own head, so it has no class "
                                 "activation map; ask for explain=occlusion instead")
        trunk_nodes = _nodes(split.trunk_bytes())
        pool = [n for n in trunk_nodes if split.cut in n[2]]
        if not pool or pool[0][0] not in ("ReduceMean", "GlobalAveragePool"):
            raise NotExplainable("this model's head does not read globally averaged features (it fine-tunes "
                                 "backbone layers), so a class activation map would not be exact; ask for "
                                 "explain=occlusion instead")
        fmap = pool[0][1][0]
        softmax = [n for n in _nodes(split.head_bytes) if n[0] == "Softmax"]
        if len(softmax) != 1:
            raise NotExplainable("this model's head has no single softmax over class logits; ask for "
                                 "explain=occlusion instead")
        logits, output = softmax[0][1][0], softmax[0][2][0]
        # One session per distinct trunk, like serving's (a Lite0 session holds ~30 MB)
        trunk, _ = _CAM_TRUNKS.get((split.key, fmap, threads), lambda: ort.InferenceSession(
            _with_outputs(split.trunk_bytes(), [fmap]), session_options(threads), providers=["CPUExecutionProvider"]))
        head = ort.InferenceSession(_with_outputs(split.head_bytes, [logits]), session_options(1),
                                    providers=["CPUExecutionProvider"])
        explainer = cls(trunk, head, fmap, split.cut, logits, output)
        explainer._check_head()
        return explainer

    def _head_logits(self, x: np.ndarray) -> np.ndarray:
        (name,) = [i.name for i in self.head.get_inputs()]
        return self.head.run([self.logits], {name: x.astype(np.float32)})[0].astype(np.float64)

    def _check_head(self) -> None:
        """Refuse a head that is not ``W·x/‖x‖ + b``: (z(v) - z(0))·‖v‖ must be additive in v."""
        rng = np.random.default_rng(0)
        d = self.head.get_inputs()[0].shape[-1]
        if not isinstance(d, int):
            raise NotExplainable("this model's head does not say how many features it reads")
        a, b = rng.random(d), rng.random(d) * 3
        z = self._head_logits(np.stack([np.zeros(d), a, b, a + b]))
        lin = (z[1:] - z[0]) * np.linalg.norm(np.stack([a, b, a + b]), axis=1)[:, None]
        if not np.allclose(lin[0] + lin[1], lin[2], rtol=1e-3, atol=1e-4):
            raise NotExplainable("this model's head is not a linear layer on normalised features, so a class "
                                 "activation map would not be exact; ask for explain=occlusion instead")

    def explain(self, images: np.ndarray) -> list[dict[str, Any]]:
        """Per image (uint8 NHWC, as the model takes it): ``cam`` [classes, H, W] of per-cell
        logit contributions, ``logits``, ``bias`` (the head's logits of a zero vector) and
        ``probabilities`` — for every class, so ``cam[k].sum() == logits[k] - bias[k]``."""
        feed = {self.trunk.get_inputs()[0].name: images}
        fmap, pooled = self.trunk.run([self.fmap, self.cut], feed)
        n, c, h, w = fmap.shape
        if not np.allclose(fmap.reshape(n, c, -1).mean(axis=2), pooled.reshape(n, c), rtol=1e-4, atol=1e-5):
            raise NotExplainable("this model's pooled features are not the mean of its feature map; "
                                 "ask for explain=occlusion instead")
        cells = fmap.astype(np.float64).transpose(0, 2, 3, 1).reshape(n * h * w, c)
        z = self._head_logits(np.concatenate([np.zeros((1, c)), pooled.reshape(n, c), cells]))
        bias, logits, zc = z[0], z[1 : n + 1], z[n + 1 :]
        # W·f for each cell, then the pooled vector's share: mean over cells, divided by ‖pooled‖
        contrib = (zc - bias) * np.linalg.norm(cells, axis=1)[:, None]
        norms = np.maximum(np.linalg.norm(pooled.reshape(n, c).astype(np.float64), axis=1), 1e-12)
        contrib = contrib.reshape(n, h * w, -1) / (h * w) / norms[:, None, None]
        probs = self.head.run([self.output], {self.head.get_inputs()[0].name: pooled.reshape(n, c)})[0]
        return [{"cam": contrib[i].T.reshape(-1, h, w), "logits": logits[i], "bias": bias, "probabilities": probs[i]}
                for i in range(n)]


def cam_map(explainer: CamExplainer, image: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """The map of the predicted class of one decoded image, as the API answers it."""
    (r,) = explainer.explain(image[None])
    k = int(np.argmax(r["probabilities"]))
    # The softmax only sees differences between logits, so the evidence for k is its map minus the
    # classes' mean map: a region every class scores alike explains nothing (with two classes, a
    # dahlia's own map can be negative everywhere and still beat the pagoda's). Still exact: the
    # cells add up to (logit_k - mean logit) - (bias_k - mean bias), the fields below.
    grid = r["cam"][k] - r["cam"].mean(axis=0)
    return {"method": "cam", "label": labels[k] if k < len(labels) else str(k), "grid": grid,
            "logit": float(r["logits"][k] - r["logits"].mean()), "bias": float(r["bias"][k] - r["bias"].mean())}


# -- occlusion -----------------------------------------------------------------------------------------
def _iou(a: dict, b: dict) -> float:
    ix = max(0.0, min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]))
    iy = max(0.0, min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]))
    inter = ix * iy
    return inter / max(1e-9, a["w"] * a["h"] + b["w"] * b["h"] - inter)


def _scorer(output, labels: tuple[str, ...]) -> tuple[Callable[[Any], float], str]:
    """(score of what ``output`` predicted, in any later output; what it predicted, in words)."""
    if isinstance(output, np.ndarray) and output.ndim == 1 and output.size > 1:  # class probabilities
        k = int(np.argmax(output))
        return (lambda o: float(o[k])), labels[k] if k < len(labels) else str(k)
    if isinstance(output, np.ndarray) and output.size == 1:  # a number: how far it moves
        base = float(output.reshape(-1)[0])
        return (lambda o: -abs(float(np.asarray(o).reshape(-1)[0]) - base)), "the value"
    if isinstance(output, list):  # a detector's boxes: the top box's object
        if not output:
            raise NotExplainable("the model found nothing in this image, so there is nothing to explain")
        top = max(output, key=lambda b: b["confidence"])
        index = top["label_index"]

        def box_score(boxes) -> float:
            same = [b["confidence"] for b in boxes if b["label_index"] == index and _iou(b, top) >= 0.3]
            return float(max(same, default=0.0))

        return box_score, labels[index] if index < len(labels) else str(index)
    if isinstance(output, dict) and "mask" in output:  # a segmenter's mask: the largest thing it painted
        mask = np.asarray(output["mask"])
        # class 0 is the background (codecs.masks): covering part of the scene always "explains" it
        counts = np.bincount(mask.reshape(-1), minlength=len(labels) + 1)[1:len(labels)]
        if not counts.any():
            raise NotExplainable("the model painted nothing but background on this image, so there is nothing "
                                 "to explain")
        index = int(np.argmax(counts)) + 1
        region = mask == index

        def area_score(out) -> float:  # the share of that area still painted as that class
            return float(np.mean(np.asarray(out["mask"])[region] == index))

        return area_score, labels[index] if index < len(labels) else str(index)
    raise NotExplainable("this model's answers cannot be explained by occlusion")


def occlusion_map(model, image: np.ndarray, grid: int = GRID) -> dict[str, Any]:
    """How much covering each cell of a ``grid``×``grid`` split of ``image`` (a decoded item of
    the model's modality, HWC uint8) lowers the score of what the model predicted on it."""
    if max(image.shape[:2]) > _OCCLUSION_SIDE:  # a full-size photo (detection): 49 copies of it would not fit
        from PIL import Image

        scale = _OCCLUSION_SIDE / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    base = model.predict_items([image])[0]
    score, said = _scorer(base, model.labels)
    reference = score(base)
    h, w = image.shape[:2]
    ys, xs = np.linspace(0, h, grid + 1).round().astype(int), np.linspace(0, w, grid + 1).round().astype(int)
    heat = np.zeros((grid, grid))
    cells = [(r, c) for r in range(grid) for c in range(grid)]
    for start in range(0, len(cells), _BATCH):
        batch = []
        for r, c in cells[start : start + _BATCH]:
            copy = image.copy()
            copy[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = GREY
            batch.append(copy)
        for (r, c), out in zip(cells[start : start + _BATCH], model.predict_items(batch)):
            heat[r, c] = reference - score(out)
    return {"method": "occlusion", "label": said, "grid": heat, "score": reference}


# -- texts: leave one out ---------------------------------------------------------------------------
_WORD = re.compile(r"\w+(?:['’]\w+)*", re.UNICODE)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*", re.UNICODE)


def _spans(text: str) -> tuple[str, list[tuple[int, int]]]:
    words = [m.span() for m in _WORD.finditer(text)]
    if len(words) <= _MAX_SPANS:
        return "word", words
    sentences = [m.span() for m in _SENTENCE.finditer(text) if m.group().strip()]
    return "sentence", sentences[:_MAX_SPANS * 4]


def leave_one_out(model, text: str) -> dict[str, Any]:
    """Each word (sentence, in long texts) of ``text`` left out in turn, in batches: its weight is
    how much leaving it out lowers the score of what the model predicted."""
    base = model.predict_items([text])[0]
    score, said = _scorer(base, model.labels)
    reference = score(base)
    unit, spans = _spans(text)
    weights: list[float] = []
    for start in range(0, len(spans), 16):
        chunk = spans[start : start + 16]
        variants = [(text[:a] + text[b:]).strip() or " " for a, b in chunk]
        weights += [reference - score(o) for o in model.predict_items(variants)]
    items = [{"start": a, "end": b, "text": text[a:b], "weight": round(float(wt), 5)}
             for (a, b), wt in zip(spans, weights)]
    top = sorted((i for i in items if i["weight"] > 0), key=lambda i: -i["weight"])[:5]
    summary = (f"the {unit}s that most supported {said}: " + ", ".join(repr(i["text"]) for i in top)
               if top else f"no single {unit} moved the answer")
    return {"method": "words", "unit": unit, "label": said, "spans": items, "score": reference, "summary": summary}


# -- pictures and words --------------------------------------------------------------------------------
# Transparent → red → yellow: the parts that mattered glow over the photo; the rest stays visible.
_RAMP = np.array([[255, 0, 0, 0], [230, 40, 30, 80], [255, 140, 0, 170], [255, 240, 60, 220]], np.float64)


def heat_png(heat: np.ndarray) -> str:
    """A grid-sized RGBA PNG (a data URL) of the positive part of ``heat``, scaled to 0..1; the
    browser stretches it over the photo with smoothing, so 7×7 stays a few hundred bytes."""
    from PIL import Image

    pos = np.clip(heat, 0, None)
    top = pos.max()
    t = (pos / top) ** 1.5 if top > 0 else pos  # the peaks stand out; weak evidence stays see-through
    x = t * (len(_RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    frac = (x - lo)[..., None]
    rgba = (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


_ROWS, _COLS = ("top", "middle", "bottom"), ("left", "centre", "right")


def describe(heat: np.ndarray, label: str) -> str:
    """Which part of the image mattered, in words: the third (row × column) holding the peak, and
    how concentrated the evidence is."""
    pos = np.clip(heat, 0, None)
    total = pos.sum()
    if total <= 0 or pos.max() <= 1e-9:
        return f"no part of the image stood out for {label}"
    g_r, g_c = heat.shape
    r, c = np.unravel_index(int(np.argmax(pos)), pos.shape)
    row, col = _ROWS[min(2, r * 3 // g_r)], _COLS[min(2, c * 3 // g_c)]
    where = "the centre" if (row, col) == ("middle", "centre") else (
        f"the {col}" if row == "middle" else f"the {row}" if col == "centre" else f"the {row} {col}")
    k = max(1, round(0.2 * pos.size))
    share = np.sort(pos.ravel())[::-1][:k].sum() / total
    spread = "mostly there" if share >= 0.6 else "with evidence spread over the image"
    return f"{where} of the image mattered most for {label} ({spread}: the top fifth of it holds {share:.0%})"


def _public(result: dict[str, Any]) -> dict[str, Any]:
    if "grid" not in result:
        return {"status": "ready", **result}
    heat = np.asarray(result["grid"], np.float64)
    out = {k: v for k, v in result.items() if k != "grid"}
    out.update(status="ready", rows=heat.shape[0], cols=heat.shape[1],
               grid=[[round(float(v), 6) for v in row] for row in heat],
               overlay=heat_png(heat), summary=describe(heat, result["label"]))
    return out


# -- the queue ---------------------------------------------------------------------------------------
class _Refused(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class ExplainQueue:
    """One worker thread for the costly explanations, a bounded queue, a per-caller rate limit
    (``per_minute`` with a burst of ``burst``) and an LRU cache of finished answers keyed by
    (project, model version, method, input hash). CAM maps are cheap and run in the request."""

    def __init__(self, *, per_minute: float = 12, burst: int = 4, max_pending: int = 4, cache_size: int = 512):
        self.per_minute, self.burst, self.max_pending = per_minute, burst, max_pending
        self._cache: OrderedDict[tuple, dict] = OrderedDict()
        self.cache_size = cache_size
        self._buckets: dict[str, tuple[float, float]] = {}
        self._pending: deque = deque()
        self._running: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self.computed = 0  # explanations computed (not served from cache): tests, metrics
        self.models: OrderedDict[tuple, Any] = OrderedDict()  # (project, version, kind) → sessions

    def cached(self, key: tuple) -> dict | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _remember(self, key: tuple, value: dict) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _take_token(self, caller: str) -> None:
        """A token bucket per caller; raises _Refused with the wait when it is empty."""
        now = time.monotonic()
        tokens, at = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_minute / 60)
        if tokens < 1:
            wait = (1 - tokens) * 60 / self.per_minute
            self._buckets[caller] = (tokens, now)
            raise _Refused(f"more than {self.per_minute:g} explanations a minute were asked for; "
                           f"retry in {wait:.0f} s", retry_after=round(wait, 1))
        self._buckets[caller] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # forget idle callers
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}

    def submit(self, key: tuple, caller: str, work: Callable[[], dict]) -> Future:
        """The answer for ``key`` as a future: cached, already being computed, or queued."""
        hit = self.cached(key)
        future: Future = Future()
        if hit is not None:
            future.set_result(hit)
            return future
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            self._take_token(caller)
            if len(self._pending) >= self.max_pending:
                raise _Refused(f"{self.max_pending} explanations are already waiting; retry in a few seconds "
                               "(predictions are never held up by them)", retry_after=5.0)
            self._running[key] = future
            self._pending.append((key, work, future))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="dyntrain-explain", daemon=True)
                self._worker.start()
            self._wake.notify()
        return future

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending:
                    if not self._wake.wait(timeout=60):
                        self._worker = None  # idle a minute: the thread ends, the next submit starts one
                        return
                key, work, future = self._pending.popleft()
            try:
                result = work()
                self.computed += 1
                self._remember(key, result)
                future.set_result(result)
            except Exception as exc:  # noqa: BLE001 — handed to the waiting request
                if not isinstance(exc, DyntrainError):
                    log.exception("explanation %s failed", key)
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._running.pop(key, None)


# Per server (keyed by its LiveModels: a Core is a dataclass, not hashable): the queue, which also
# holds the extra sessions explanations run on.
_QUEUES: "weakref.WeakKeyDictionary[Any, ExplainQueue]" = weakref.WeakKeyDictionary()
_queues_lock = threading.Lock()


def queue_for(core) -> ExplainQueue:
    with _queues_lock:
        q = _QUEUES.get(core.live)
        if q is None:
            q = _QUEUES[core.live] = ExplainQueue()
        return q


def _model_row(core, project_id: int, version: int):
    from sqlalchemy import select

    from ..storage.rows import ModelVersionRow, ProjectRow

    with core.db.read() as s:
        row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == project_id,
                                                      ModelVersionRow.version == version)).first()
        task = s.scalar(select(ProjectRow.task).where(ProjectRow.id == project_id))
    gone = (f"model version {version} has been deleted (housekeeping keeps the newest keep_model_versions "
            "versions and those an alias needs), so answers it gave cannot be explained any more; predict the "
            "input again with ?explain= to explain the model in service")
    if row is None:
        raise Gone(gone)
    live = core.live
    try:
        path = live.fetch(row.path) if live.fetch is not None else live.model_dir / row.path
    except DyntrainError:  # the shared artifact store no longer has it
        raise Gone(gone) from None
    if not path.is_file():
        raise Gone(gone)
    return path, row.card.get("task") or task, list(row.card.get("labels") or [])


def _cached_model(core, project_id: int, version: int, kind: str, build: Callable[[Any, str, list], Any]):
    q = queue_for(core)
    key = (project_id, version, kind)
    with q._lock:
        hit = q.models.get(key)
        if hit is not None:
            q.models.move_to_end(key)
            return hit
    path, task, labels = _model_row(core, project_id, version)
    made = build(path, task, labels)
    with q._lock:
        made = q.models.setdefault(key, made)
        while len(q.models) > 6:  # a few models: each holds ONNX Runtime sessions (~30 MB for Lite0)
            q.models.popitem(last=False)
    return made


def _cam_explainer(core, project_id: int, version: int):
    def build(path, task, labels):
        try:
            return CamExplainer.from_bytes(path.read_bytes(), threads=core.settings.onnx_threads)
        except NotExplainable as exc:
            return exc  # remembered too: the file does not change

    return _cached_model(core, project_id, version, "cam", build)


def _slow_model(core, project_id: int, version: int):
    """The model on a ONE-thread session, for the queue's worker: at most one core."""
    from .live import load_model

    return _cached_model(core, project_id, version, "one-thread",
                         lambda path, task, labels: load_model(path, project_id, version, labels, 1, task=task))


def explanation_for(core, project_id: int, version: int, method: str, data: bytes, decode: Callable[[bytes], Any],
                    caller: str, *, labels: tuple[str, ...] = (), wait_s: float = 20.0) -> dict[str, Any]:
    """One input's explanation, as the API answers it (``status`` ready / refused / unavailable /
    pending — never an exception for a refusal)."""
    digest = hashlib.sha256(data).hexdigest()
    if method in ("cam", "auto"):
        explainer = _cam_explainer(core, project_id, version)
        try:
            if isinstance(explainer, NotExplainable):
                raise explainer
            return _public(cam_map(explainer, decode(data), labels))
        except NotExplainable as exc:
            if method == "cam":
                return {"method": "cam", "status": "unavailable", "reason": exc.message}
            method = "occlusion"  # auto: the map every image model has
    queue = queue_for(core)

    def work() -> dict:
        model = _slow_model(core, project_id, version)
        item = decode(data)
        return _public(leave_one_out(model, item) if method == "words" else occlusion_map(model, item))

    try:
        future = queue.submit((project_id, version, method, digest), caller, work)
    except _Refused as exc:
        return {"method": method, "status": "refused", "reason": exc.reason, "retry_after_s": exc.retry_after}
    try:
        return future.result(timeout=wait_s)
    except TimeoutError:
        return {"method": method, "status": "pending",
                "reason": "still being computed; ask again with the same input (answers are cached)"}
    except NotExplainable as exc:
        return {"method": method, "status": "unavailable", "reason": exc.message}


def attach(core, project: str, results: list[dict[str, Any]], files: list[tuple[str, bytes]], method: str,
           caller: str, *, wait_s: float = 20.0) -> list[dict[str, Any]]:
    """Add ``explanation`` to each successful prediction in ``results`` (in place, and returned):
    ``files`` are the ``(name, bytes)`` the predictions were made from, in the same order."""
    from .. import tasks
    from ..kernel.projects import project_row

    if method not in METHODS:
        raise Invalid(f"explain must be one of {', '.join(METHODS)}")
    with core.db.read() as s:
        row = project_row(s, project)
        pid, modality = row.id, tasks.get(row.task).modality
    wants = "text" if method == "words" else "image"  # modality kinds, never task names
    if modality.kind != wants:
        other = "explain=words" if modality.kind == "text" else "explain=cam or explain=occlusion"
        raise Invalid(f"explain={method} explains {wants} predictions; this project's are {modality.plural} "
                      f"(use {other})" if modality.kind in ("text", "image") else
                      f"this project's {modality.plural} cannot be explained yet")

    def decode(data: bytes):
        return modality.decode(data, max_pixels=core.settings.max_image_pixels)

    for result, (_, data) in zip(results, files):
        if "error" in result:
            continue
        version = result["model_version"]
        labels = tuple(core.live.version(pid, version).labels)
        try:
            result["explanation"] = explanation_for(core, pid, version, method, data, decode, caller,
                                                    labels=labels, wait_s=wait_s)
        except DyntrainError as exc:
            result["explanation"] = {"method": method, "status": "unavailable", "reason": exc.message}
    return results


def explain_prediction(core, project: str, prediction_id: int, method: str = "auto", caller: str = "", *,
                       wait_s: float = RECORDED_WAIT_S) -> dict[str, Any]:
    """The explanation of a recorded prediction, from its kept input and the model version that
    answered it (``GET …/predictions/{id}/explanation``: the Try page after each answer, a
    prediction's detail page); ``pending`` when the queue has not finished it within ``wait_s``.

    ``auto`` is the modality's own method: ``words`` for texts, else cam where exact, else
    occlusion. Raises Conflict (409) when the input was not kept, Gone (410) when the model
    version that answered has been deleted since."""
    from .. import tasks
    from ..kernel.errors import Conflict
    from ..kernel.projects import project_row
    from .predict import prediction_row

    if method not in METHODS:
        raise Invalid(f"method must be one of {', '.join(METHODS)}")
    with core.db.read() as s:
        project_ = project_row(s, project)
        row = prediction_row(s, project_.id, prediction_id)
        stored, digest, version = row.input_stored, row.input_hash, row.model_version
        kind = tasks.get(project_.task).modality.kind
    if not stored or not digest or not core.blobs.exists(digest):
        raise Conflict(f"the input of prediction {prediction_id} was not kept (store_prediction_inputs is off or "
                       "retention expired), so it cannot be explained; predict it again with ?explain=")
    _model_row(core, project_.id, version)  # Gone before anything cached for it answers
    if method == "auto" and kind == "text":
        method = "words"
    results = [{"model_version": version}]
    attach(core, project, results, [(f"prediction-{prediction_id}", core.blobs.get(digest))], method, caller,
           wait_s=wait_s)
    return results[0]["explanation"]
