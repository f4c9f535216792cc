"""Semantic segmentation: metrics on hand-made masks, views, letterbox decoding, and one small
real fit (synthetic scenes cut from scikit-learn's sample photos, the frozen Lite0 backbone)
shared by the tests that need a trained model.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from dyntrain.kernel.errors import Invalid
from dyntrain.learners import feature_maps as fm
from dyntrain.codecs import letterbox as lb
from dyntrain.learners import segmentation as seg
from dyntrain.learners.segmentation_metrics import boundary_counts, segmentation_metrics
from dyntrain.codecs.masks import UNLABELLED
from dyntrain.ops.scenes import make_scenes

NAMES = ["background", "cup", "plate"]


# --- metrics on hand-made masks --------------------------------------------------------------------


def test_iou_covered_and_spill_by_hand():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1                       # 16 cup pixels
    pred = np.zeros_like(truth)
    pred[2:6, 2:5] = 1                        # 12 of them found ...
    pred[8, 0:4] = 1                          # ... and 4 background pixels called cup
    m = segmentation_metrics([truth], [pred], NAMES)
    cup = m["per_class"]["cup"]
    assert cup["iou"] == pytest.approx(12 / 20)
    assert cup["covered"] == pytest.approx(12 / 16) and cup["spill"] == pytest.approx(4 / 16)
    bg = m["per_class"]["background"]
    assert bg["iou"] == pytest.approx(80 / 88)
    # "plate" is in neither mask: it says nothing and stays out of the mean.
    assert m["per_class"]["plate"]["iou"] is None and m["per_class"]["plate"]["boundary_f"] is None
    assert m["miou"] == pytest.approx((12 / 20 + 80 / 88) / 2)
    assert m["pixel_accuracy"] == pytest.approx(92 / 100)
    assert m["confusion"] == [[80, 4, 0], [4, 12, 0], [0, 0, 0]]


def test_unlabelled_truth_counts_nowhere():
    truth = np.full((8, 8), UNLABELLED, np.uint8)
    truth[:4] = 1
    pred = np.ones_like(truth)              # right where labelled; "cup" everywhere else too
    m = segmentation_metrics([truth], [pred], NAMES)
    assert m["miou"] == 1.0 and m["pixel_accuracy"] == 1.0
    assert m["per_class"]["cup"]["spill"] == 0.0 and m["per_class"]["cup"]["pixels"] == 32


def test_pixels_accumulate_over_images_not_mean_of_images():
    big = np.ones((10, 10), np.uint8)
    tiny_truth = np.zeros((10, 10), np.uint8)
    tiny_truth[0, 0] = 1
    tiny_pred = np.zeros_like(tiny_truth)     # the one cup pixel missed
    m = segmentation_metrics([big, tiny_truth], [big, tiny_pred], NAMES)
    assert m["per_class"]["cup"]["iou"] == pytest.approx(100 / 101)
    assert m["per_image_miou"][0] == 1.0 and m["per_image_miou"][1] == pytest.approx(99 / 100 / 2)


def test_boundary_f_tolerates_a_pixel_but_not_a_sloppy_outline():
    truth = np.zeros((100, 100), np.uint8)
    truth[30:70, 30:70] = 1
    shifted = np.roll(truth, 1, axis=1)       # within the tolerance (0.75% of the diagonal: 1 px)
    sloppy = np.zeros_like(truth)
    sloppy[25:75, 25:75] = 1
    assert segmentation_metrics([truth], [truth], NAMES)["boundary_f"] == 1.0
    assert segmentation_metrics([truth], [shifted], NAMES)["per_class"]["cup"]["boundary_f"] == 1.0
    m = segmentation_metrics([truth], [sloppy], NAMES)
    assert m["per_class"]["cup"]["boundary_f"] == 0.0
    assert m["per_class"]["cup"]["iou"] == pytest.approx(1600 / 2500)  # IoU still looks decent
    # The photo's frame is no outline: a class filling a whole edge has no boundary there.
    full = np.ones((20, 20), np.uint8)
    assert boundary_counts(full, full, 3)[1].tolist() == [0, 0, 0, 0]


def test_metrics_refuse_mismatched_masks():
    with pytest.raises(Invalid, match="true mask is 4x3"):
        segmentation_metrics([np.zeros((3, 4), np.uint8)], [np.zeros((4, 3), np.uint8)], NAMES)
    with pytest.raises(Invalid, match="1 true masks but 2"):
        segmentation_metrics([np.zeros((3, 4))], [np.zeros((3, 4))] * 2, NAMES)


# --- views and letterbox --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene():
    return make_scenes(2, classes=2, size=(320, 240), seed=5)[1]


def painted(mask: np.ndarray) -> np.ndarray:
    """An image whose colour is its class: lets a test see whether image and mask moved together."""
    palette = np.array([[0, 0, 0], [250, 0, 0], [0, 250, 0]] + [[0, 0, 250]] * 253, np.uint8)
    return palette[mask]


def test_geometric_views_move_image_and_mask_together(scene):
    image = painted(scene.mask)
    assert (scene.mask > 0).any()
    params = {"flip": True, "angle": 9.0, "zoom": 1.3, "shift": (0.1, -0.05),
              "brightness": 1.0, "contrast": 1.0, "color": 1.0}
    img, msk = seg._augment(image, scene.mask, params)
    assert img.shape == image.shape and msk.shape == scene.mask.shape
    assert not np.array_equal(msk, scene.mask)
    inside = msk != UNLABELLED
    assert (~inside).any()  # the rotated-in border is unlabelled, never "background"
    # Away from edges (bilinear blends there), each labelled pixel's colour is its class colour.
    agree = (painted(msk)[inside] == img[inside]).all(axis=1).mean()
    assert agree > 0.95


def test_photometric_views_change_the_image_only(scene):
    params = {"flip": False, "angle": 0.0, "zoom": 1.0, "shift": (0.0, 0.0),
              "brightness": 1.3, "contrast": 0.8, "color": 1.2}
    img, msk = seg._augment(scene.image, scene.mask, params)
    assert np.array_equal(msk, scene.mask)
    assert np.abs(img.astype(int) - scene.image).mean() > 5


def test_views_are_drawn_from_content():
    a = seg._view_params("ab" * 32, 1)
    assert a == seg._view_params("ab" * 32, 1) and a != seg._view_params("ab" * 32, 2)
    assert seg._view_params("ab" * 32, 0) is None


def test_letterboxed_mask_sits_where_the_image_does(scene):
    batch, (scale, px, py) = seg.preprocess(scene.image, 320)
    lm = seg._letterbox_mask(scene.mask, 320)
    assert (px, py) == (0, 40)
    assert (lm[:py] == UNLABELLED).all() and (lm[py + 240:] == UNLABELLED).all()
    assert np.array_equal(lm[py:py + 240], scene.mask)
    assert (batch[0, :py] == lb.PAD_VALUE).all()


def test_decode_undoes_the_letterbox():
    image = np.zeros((100, 200, 3), np.uint8)        # 2:1 photo -> 64x32 band in a 64 square
    _, info = seg.preprocess(image, 64)
    scale, px, py = info
    assert (scale, px, py) == (0.32, 0, 16)
    model_mask = np.full((1, 64, 64), 2, np.int64)   # padding predicted as class 2: cropped away
    model_mask[0, 16:48, :32] = 1                     # left half of the photo
    model_mask[0, 16:48, 32:] = 0
    out = seg.decode([model_mask], info, (200, 100))
    assert out.shape == (100, 200) and out.dtype == np.uint8
    assert (out[:, :100] == 1).all() and (out[:, 100:] == 0).all()
    probs = np.zeros((1, 3, 64, 64), np.float32)
    probs[0, 1] = 1.0
    p = seg.decode_probabilities({"mask": model_mask, "probabilities": probs}, info, (200, 100))
    assert p.shape == (3, 100, 200) and np.allclose(p[1], 1.0)
    with pytest.raises(Invalid, match="batch of 2"):
        seg.decode([np.zeros((2, 64, 64))], info, (200, 100))


def test_loss_points_never_land_on_unlabelled_pixels():
    from dyntrain.learners.segmentation_nets import _sample_points

    masks = np.full((2, 32, 32), UNLABELLED, np.uint8)
    masks[0, 3, 4] = 2                                # one labelled pixel
    masks[1, 10:20, 10:20] = 0
    masks[1, 12, 12] = 1
    grid, labels = _sample_points(masks, np.array([0, 1]), 500, np.random.default_rng(0))
    assert set(labels[0].tolist()) == {2} and set(labels[1].tolist()) <= {0, 1}
    # The balanced share reaches the one-pixel class (1% of the labelled pixels) far more often
    # than uniform points would (~5 of 500).
    assert (labels[1] == 1).sum() > 15
    x = (grid[0, 0, :, 0].numpy() + 1) / 2 * 32 - 0.5
    y = (grid[0, 0, :, 1].numpy() + 1) / 2 * 32 - 0.5
    assert np.allclose(x, 4) and np.allclose(y, 3)


def test_inputs_are_checked(scene, tmp_path):
    img, mask = scene.image, scene.mask
    names = ["background", *scene.class_names]
    kw = {"cache_dir": tmp_path, "time_budget_s": 5}
    with pytest.raises(Invalid, match="2 images but 1 masks"):
        seg.fit_segmenter([img, img], [mask], names, **kw)
    with pytest.raises(Invalid, match="at least 2 annotated images"):
        seg.fit_segmenter([img], [mask], names, **kw)
    with pytest.raises(Invalid, match="mask 1: the mask is 240x320 pixels but its image is 320x240"):
        seg.fit_segmenter([img, img], [mask, mask.T.copy()], names, **kw)
    with pytest.raises(Invalid, match="every mask is unlabelled"):
        seg.fit_segmenter([img, img], [np.full_like(mask, UNLABELLED)] * 2, names, **kw)
    with pytest.raises(Invalid, match="unknown segmentation candidates"):
        seg.fit_segmenter([img, img], [mask, mask], names, candidates=["unet"], **kw)


# --- one real fit, shared -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    scenes = make_scenes(18, classes=2, size=(320, 240), seed=3)
    return {"train": scenes[:12], "test": scenes[12:], "names": ["background", *scenes[0].class_names]}


@pytest.fixture(scope="module")
def trained(data, cache_dir):
    """12 scenes, both candidates, 2-fold CV: ~20 s on 2 busy cores (fewer epochs and views
    than the defaults; the benchmark runs those)."""
    train = data["train"]
    return seg.fit_segmenter([s.image for s in train], [s.mask for s in train], data["names"],
                             cache_dir=cache_dir, time_budget_s=300, epochs=8, augment_views=1,
                             folds=2, max_repeats=1, seed=0)


@pytest.mark.slow
def test_small_fit_learns_the_scenes(trained, data):
    model, report = trained
    test = data["test"]
    pred = model.predict([s.image for s in test])
    assert [p.shape for p in pred] == [s.mask.shape for s in test]
    m = segmentation_metrics([s.mask for s in test], pred, data["names"])
    # Always answering "background" scores ~1/3 here (its IoU ~0.9, the objects' 0).
    assert m["miou"] >= 0.65, m["per_class"]
    assert all(m["per_class"][c]["iou"] >= 0.4 for c in data["names"][1:]), m["per_class"]


@pytest.mark.slow
def test_report_records_the_selection(trained, data):
    _, report = trained
    assert report["selected"] in seg.CANDIDATES and report["rule"]
    folds = [len(c["fold_miou"]) for c in report["candidates"].values()]
    assert folds == [2, 2]  # cut between folds: every candidate has the same ones
    assert report["cv"] == {"folds": 2, "repeats_done": 1, "fold_rounds": 2, "cut_by_budget": False,
                            "time_budget_s": 300.0}
    cv = report["cv_metrics"]
    assert sorted(cv["image_indices"]) == list(range(12))
    assert set(cv["per_class"]) == set(data["names"]) and 0 < cv["miou"] <= 1
    assert report["views"] == 2 and report["epochs"] == 8 and len(report["curves"]) == 8
    assert report["curves"][-1]["loss"] < report["curves"][0]["loss"]


@pytest.mark.slow
def test_onnx_file_matches_torch(trained, data, tmp_path):
    model, _ = trained
    path = seg.export_segmenter(model, tmp_path / "seg.onnx")
    assert path.stat().st_size < 20_000_000
    meta = seg.onnx_metadata(path)
    assert meta["class_names"] == data["names"] and meta["size"] == model.size
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("image", "tensor(uint8)", [model.size, model.size, 3])
    assert [o.name for o in sess.get_outputs()] == ["mask", "probabilities"]
    images = [s.image for s in data["test"][:3]]
    batch = np.concatenate([seg.preprocess(im, model.size)[0] for im in images])
    out_mask, out_probs = sess.run(None, {"image": batch})
    assert out_mask.dtype == np.int64 and out_mask.shape == (3, model.size, model.size)
    assert out_probs.shape == (3, len(data["names"]), model.size, model.size)

    from dyntrain.learners.segmentation_nets import predict_masks

    feats = seg._run_backbone(model.cache_dir, model.size, batch, threads=2)
    t_mask, t_probs = predict_masks(model.decoder, feats, model.size, probabilities=True)
    assert np.abs(out_probs - t_probs).max() < 1e-3
    assert (out_mask == t_mask).mean() > 0.999  # argmax may flip only on exact near-ties
    # Served path (ONNX + numpy decode) = the torch path at the original size.
    torch_masks = model.predict(images)
    for k, im in enumerate(images):
        served = seg.decode([out_mask[k:k + 1]], seg.preprocess(im, model.size)[1], (im.shape[1], im.shape[0]))
        assert (served == torch_masks[k]).mean() > 0.999


@pytest.mark.slow
def test_occlusion_explains_a_served_mask_by_its_largest_area(trained, data, tmp_path):
    """Covering the painted thing takes its area away; covering the background around it does not."""
    from dyntrain.serving import explain
    from dyntrain.serving.live import load_model

    model, _ = trained
    served = load_model(seg.export_segmenter(model, tmp_path / "seg.onnx"), 1, 1, data["names"], 1,
                        task="semantic-segmentation")
    hits = tried = 0
    for s in data["test"]:
        painted = served.predict_items([s.image])[0]["mask"]
        if not (painted > 0).any():
            continue
        r = explain.occlusion_map(served, s.image)
        assert r["label"] in data["names"][1:] and r["score"] == 1.0
        h, w = s.mask.shape
        row, col = np.unravel_index(int(np.argmax(r["grid"])), r["grid"].shape)
        cell = s.mask[row * h // 7:(row + 1) * h // 7, col * w // 7:(col + 1) * w // 7]
        tried += 1
        hits += bool((cell > 0).any())  # the hottest cell holds part of a true object
    assert tried >= 4 and hits >= tried - 1, (hits, tried)
    with pytest.raises(explain.NotExplainable, match="nothing but background"):
        explain._scorer({"mask": np.zeros((240, 320), np.uint8)}, tuple(data["names"]))


@pytest.mark.slow
def test_retrain_reuses_cached_features_and_budget_cuts_between_folds(trained, data, cache_dir):
    train = data["train"]
    _, report = seg.fit_segmenter([s.image for s in train], [s.mask for s in train], data["names"],
                                  cache_dir=cache_dir, time_budget_s=0.5, augment_views=1,
                                  folds=3, max_repeats=2)
    assert report["features_computed"] == 0
    # No time for the usual passes: the fewest, measured before training.
    assert report["epochs"] == seg.MIN_EPOCHS < report["epochs_default"]
    assert report["cv"]["cut_by_budget"] and report["cv"]["fold_rounds"] == 1
    assert all(len(c["fold_miou"]) == 1 for c in report["candidates"].values())
