"""Item vectors from a catalogue: what the content learner and the cold-start answers compare.

One row per item id, four blocks side by side, each L2-normalised per item and weighted equally,
so the cosine of two items is the mean of their category, attribute, text and picture
similarities over the blocks both have:

* **category** — one-hot over the catalogue's categories;
* **attributes** — one-hot over (name, value) pairs that at least two items share (a value only
  one item has says nothing about its likeness to others), the most common :data:`MAX_PAIRS`;
* **text** — all-MiniLM-L6-v2 sentence embedding (``minilm.mean``, 384 values), the model text
  projects use;
* **picture** — Lite0's pooled features (``lite0.pooled``), the backbone image projects use.

The embedders are passed in (the training run gives the cached MiniLM encoder and Lite0
extractor), so this module stays NumPy only and testable with any embedding. Items without an
entry get a zero row: the learners treat them as having no content evidence. The served file
keeps the rows (projected to 64 values, see ``recommend_models._served_features``), so serving
needs neither torch nor ONNX Runtime for them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["MAX_PAIRS", "item_matrix"]

#: Most attribute (name, value) pairs one-hot encoded.
MAX_PAIRS = 500

Embed = Callable[[list[str]], np.ndarray]


def _unit(X: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, n, out=np.zeros_like(X), where=n > 0)


def item_matrix(item_ids: Sequence[Any], catalogue: dict[str, dict[str, Any]], *,
                embed_texts: Embed | None = None, embed_images: Embed | None = None) -> tuple[np.ndarray | None, dict]:
    """(rows for ``item_ids`` or None when the catalogue describes none of them, what each block
    holds). ``embed_texts(texts)`` and ``embed_images(picture digests)`` return one row each."""
    entries = [catalogue.get(str(i)) for i in item_ids]
    present = [k for k, e in enumerate(entries) if e is not None]
    if not present:
        return None, {"items": 0}
    n = len(item_ids)
    blocks, info = [], {"items": len(present)}

    categories = sorted({e["category"] for e in entries if e is not None and e.get("category") is not None})
    if categories:
        col = {c: j for j, c in enumerate(categories)}
        B = np.zeros((n, len(categories)), np.float32)
        for k in present:
            c = entries[k].get("category")
            if c is not None:
                B[k, col[c]] = 1.0
        blocks.append(B)
        info["categories"] = len(categories)

    pairs = Counter((a, v) for e in entries if e is not None for a, v in (e.get("attributes") or {}).items())
    kept = [p for p, c in pairs.most_common(MAX_PAIRS) if c >= 2]
    if kept:
        col = {p: j for j, p in enumerate(kept)}
        B = np.zeros((n, len(kept)), np.float32)
        for k in present:
            for p in (entries[k].get("attributes") or {}).items():
                if p in col:
                    B[k, col[p]] = 1.0
        blocks.append(_unit(B))
        info["attribute_values"] = len(kept)

    for field, embed, name in (("text", embed_texts, "texts"), ("image", embed_images, "pictures")):
        have = [k for k in present if entries[k].get(field)]
        if not have or embed is None:
            continue
        E = np.asarray(embed([entries[k][field] for k in have]), np.float32)
        B = np.zeros((n, E.shape[1]), np.float32)
        B[have] = _unit(E)
        blocks.append(B)
        info[name] = len(have)
    if not blocks:
        return None, info
    # Equal weight per block: a 1,280-value picture vector must not drown a one-hot category.
    F = np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))
    info["width"] = int(F.shape[1])
    return F.astype(np.float32), info
