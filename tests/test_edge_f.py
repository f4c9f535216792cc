"""The edge F-score of learned edge filters (codecs.pairs.edge_counts / edge_f): one-to-one matching
of answered and true edge pixels within 1.5 px, checked against an independent assignment solver;
and an image-to-image run on black-and-white edge maps reports it (in words on its page too),
while a run on grey outputs does not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dyntrain import tasks
from dyntrain.codecs.pairs import edge_counts, edge_f
from dyntrain.ops.edge_pairs import sample_crops, sobel_map


def _assignment_matches(truth: np.ndarray, predicted: np.ndarray, tolerance: float = 1.5) -> int:
    """Most one-to-one pairs of (answered, true) edge pixels within ``tolerance`` px, by SciPy's
    linear assignment over all pixel pairs (slow, independent of the bipartite matching)."""
    from scipy.optimize import linear_sum_assignment

    t, p = np.argwhere(truth > 127), np.argwhere(predicted > 127)
    if not len(t) or not len(p):
        return 0
    near = np.hypot(*(p[:, None, :] - t[None, :, :]).transpose(2, 0, 1)) <= tolerance
    rows, cols = linear_sum_assignment(near, maximize=True)
    return int(near[rows, cols].sum())


@pytest.mark.parametrize("seed", range(6))
def test_matches_are_the_most_one_to_one_pairs(seed):
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random((24, 20)) < 0.15, 255, 0).astype(np.uint8)
    # the truth shifted a pixel, thickened in places, with spurious and missing pixels
    said = np.roll(truth, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 2)))
    said = np.where(rng.random(said.shape) < 0.08, 255 - said, said).astype(np.uint8)
    counts = edge_counts(truth, said)
    assert counts[0] == counts[2] == _assignment_matches(truth, said)
    assert counts[1] == (said > 127).sum() and counts[3] == (truth > 127).sum()


def test_a_shifted_edge_counts_a_thick_or_distant_one_does_not():
    a = np.zeros((12, 12), np.uint8)
    a[6] = 255
    diag = np.eye(12, dtype=np.uint8) * 255
    assert edge_f(edge_counts(a, np.roll(a, 1, axis=0)))["f"] == 1.0
    assert edge_f(edge_counts(diag, np.eye(12, k=1, dtype=np.uint8) * 255))["f"] > 0.95  # one pixel right: 11 of 12
    assert edge_f(edge_counts(a, np.roll(a, 2, axis=0)))["f"] == 0.0
    thick = a.copy()
    thick[5:8] = 255
    assert edge_f(edge_counts(a, thick)) == {"precision": 1 / 3, "recall": 1.0, "f": 0.5}
    assert edge_f(edge_counts(a, np.zeros_like(a))) == {"precision": None, "recall": 0.0, "f": 0.0}
    assert edge_f(edge_counts(np.zeros_like(a), np.zeros_like(a)))["f"] == 1.0
    # several maps pool their pixels, not their scores
    both = edge_counts(a, a) + edge_counts(a, thick)
    assert edge_f(both)["precision"] == 24 / 48


def _png(a) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _run(outputs, photos, tmp_path):
    from dyntrain import learners
    from dyntrain.codecs.pairs import encode_png
    from dyntrain.kernel.entities import VersionItem
    from dyntrain.storage.blobs import sha256_hex
    from dyntrain.training.pipeline import train
    from dyntrain.training.spec import TrainingSpec

    blobs, items = {}, []
    for i, (p, o) in enumerate(zip(photos, outputs)):
        photo, output = _png(p), encode_png(o)
        blobs[sha256_hex(photo)], blobs[sha256_hex(output)] = photo, output
        items.append(VersionItem(i + 1, sha256_hex(photo), "pair", {"image": sha256_hex(output), "digest": "",
                                                                    "mode": "L"}))
    outcome = train(items, TrainingSpec(1, task="image-to-image", time_budget_s=6), load_image=blobs.get,
                    extractor=learners.FeatureExtractor(tmp_path / "cache"), work_dir=tmp_path / "run")
    return outcome.result


def test_a_run_on_edge_maps_reports_its_edge_f_in_words(tmp_path):
    photos = sample_crops(6, seed=2)
    # black-and-white edges: the Sobel magnitude thresholded (a near-blank crop's map stays black)
    edges = [np.where(sobel_map(p) >= max(10, np.percentile(sobel_map(p), 85)), 255, 0).astype(np.uint8)
             for p in photos]
    assert any(not e.any() for e in edges) and all(e.any() for e in edges[2:4])
    result = _run(edges, photos, tmp_path)
    edge = result["metrics"]["edge"]
    assert 0 <= edge["f"] <= 1 and edge["precision"] is not None and edge["recall"] is not None
    said = tasks.get("image-to-image").target.run_view(result, result["metrics"])["sentences"]
    assert any(s.startswith("As an edge map: it finds ") and f"{edge['recall']:.0%}" in s for s in said), said

    grey = _run([sobel_map(p) for p in photos], photos, tmp_path / "grey")
    assert "edge" not in grey["metrics"]
    assert not any("edge map" in s for s in tasks.get("image-to-image").target.run_view(grey, grey["metrics"])["sentences"])
