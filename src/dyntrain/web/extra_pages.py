"""Pages for what the API already did without a UI (issue 19): a project's dataset versions
(changes in words, compare two, restore one, undo the last change) and its model versions
(which serves, upload an ONNX model, two versions side by side, class by class).

Kept apart from pages.py so the page module stays about the training loop's main views; the
same project context, templates and 404 handling are reused from it. Every change is a
``fetch`` to the REST API (static/versions.js, static/models.js).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from ..kernel.core import Core
from ..registry import models as registry
from . import version_words
from .pages import _project_context, _render, get_core, html

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/projects/{name}/versions")
@html
def versions_page(name: str, request: Request, before: int | None = Query(None, ge=1),
                  a: int | None = Query(None, ge=1), b: int | None = Query(None, ge=1),
                  core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "versions")
    task = ctx["task"]
    rows = version_words.version_rows(core, name, task.modality.noun, task.modality.plural,
                                      task.target.has_classes, before=before, items=task.modality.sample_versions)
    return _render(request, "versions.html", {**ctx, **rows, "before": before, "restorable": task.modality.sample_versions,
                                              "noun": task.modality.noun, "plural": task.modality.plural})


def _scores(card: dict[str, Any]) -> dict[str, Any]:
    """A model card's scores (whatever its target reports): the overall ones and per class."""
    metrics = card.get("metrics") or {}
    overall = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    per_class = metrics.get("per_class") if isinstance(metrics.get("per_class"), dict) else {}
    return {"overall": overall, "per_class": per_class}


#: Overall scores in words (the card keeps the API's keys); any other key is shown as it is.
SCORE_WORDS = {"accuracy": "right this share of the time", "macro_f1": "balanced score (macro F1)",
               "r2": "R² (share of the variation explained)", "mae": "mean absolute error",
               "rmse": "root mean squared error", "miou": "mean overlap (mIoU)", "pixel_accuracy": "pixels right",
               "map50": "boxes found (mAP at 50% overlap)", "map50_95": "mAP at 50–95% overlap",
               "psnr": "PSNR (dB)", "ssim": "SSIM", "mean_abs_error": "mean absolute error", "boundary_f": "boundary F",
               "ndcg": "ranking quality (NDCG at 10)", "hit_rate": "people with a hit in their top 10",
               "precision": "precision at 10", "recall": "recall at 10", "map": "MAP at 10",
               "coverage": "share of items ever recommended", "novelty": "novelty"}


def _source_words(m) -> str:
    if m.source == "external":
        name = m.card.get("filename") or "a file"
        return f"uploaded ({name})"
    return f"trained by run #{m.run_id}" if m.run_id else "trained"


@router.get("/projects/{name}/models")
@html
def models_page(name: str, request: Request, a: int | None = Query(None, ge=1), b: int | None = Query(None, ge=1),
                core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "models")
    models = registry.list_models(core, name)
    by_version = {m.version: m for m in models}
    compare = None
    if a in by_version and b in by_version:
        left, right = (by_version[a], _scores(by_version[a].card)), (by_version[b], _scores(by_version[b].card))
        keys = sorted(set(left[1]["overall"]) | set(right[1]["overall"]), key=lambda k: (k not in SCORE_WORDS, k))
        classes = list(dict.fromkeys([*left[1]["per_class"], *right[1]["per_class"]]))
        fields = [f for f in ("precision", "recall", "f1", "iou", "ap50")
                  if any(f in (s[1]["per_class"].get(c) or {}) for s in (left, right) for c in classes)]
        compare = {"left": left, "right": right, "overall_keys": keys, "classes": classes, "fields": fields}
    return _render(request, "models.html", {**ctx, "models": models, "a": a, "b": b, "compare": compare,
                                            "score_words": SCORE_WORDS, "source_words": _source_words,
                                            "scores": _scores})
