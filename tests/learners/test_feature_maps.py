"""Multi-scale Lite0 feature maps: export, cache, ONNX Runtime vs PyTorch, letterboxing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images

from dyntrain.kernel.errors import Invalid
from dyntrain.learners import _nets
from dyntrain.learners import feature_maps as fm
from dyntrain.codecs import letterbox as lb

SIZE = 256


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    # Real photos (427x640) shipped with scikit-learn; one cropped tall to test both pad axes.
    china, flower = load_sample_images().images
    return [china, flower[:, 100:400]]


@pytest.fixture(scope="module")
def fm_path(cache_dir):
    return fm.export_feature_maps(cache_dir, SIZE)


def test_blocks_at_each_stride_are_the_last_ones():
    lite0 = _nets.load_lite0()
    strides = [b._block_args.stride for b in lite0._blocks]
    cum, at = 2, []  # the stem has stride 2
    for s in strides:
        cum *= s if isinstance(s, int) else s[0]
        at.append(cum)
    for name, index in fm.BLOCK_AT_STRIDE.items():
        assert at[index] == fm.STRIDES[name]
        assert index + 1 == len(at) or at[index + 1] > at[index], f"{name} is not the last block at its stride"
        assert lite0._blocks[index]._block_args.output_filters == fm.CHANNELS[name]


def test_shapes_and_cache_reuse(cache_dir, fm_path, photos):
    assert fm.export_feature_maps(cache_dir, SIZE) == fm_path
    mtime = fm_path.stat().st_mtime_ns
    assert fm.export_feature_maps(cache_dir, SIZE).stat().st_mtime_ns == mtime
    assert fm.session(fm_path) is fm.session(fm_path)
    batch, _, _ = lb.letterbox_many(photos, SIZE)
    sess = fm.session(fm_path)
    assert [o.name for o in sess.get_outputs()] == list(fm.OUTPUTS)
    outs = sess.run(None, {"image": batch})
    for name, out in zip(fm.OUTPUTS, outs):
        assert out.shape == (2, fm.CHANNELS[name], SIZE // fm.STRIDES[name], SIZE // fm.STRIDES[name])
        assert out.dtype == np.float32 and np.isfinite(out).all()
    # Another size is another file; a size that is not a multiple of 32 is refused clearly.
    assert fm.feature_maps_path(cache_dir, 320) != fm_path
    with pytest.raises(Invalid, match="multiple of 32"):
        fm.export_feature_maps(cache_dir, 300)


def test_onnx_matches_pytorch(fm_path, photos):
    batch, _, _ = lb.letterbox_many(photos, SIZE)
    outs = fm.session(fm_path).run(None, {"image": batch})
    with torch.no_grad():
        ref = fm.torch_module()(torch.from_numpy(batch))
    for name, a, b in zip(fm.OUTPUTS, outs, ref):
        diff = float(np.abs(a - b.numpy()).max())
        assert diff < 1e-3 * max(1.0, float(np.abs(b.numpy()).max())), (name, diff)


def test_letterbox_keeps_aspect_and_boxes_map_back(photos):
    china, tall = photos
    batch, scale, pad_x, pad_y = lb.letterbox(china, SIZE)  # 427 x 640: padded top and bottom
    assert batch.shape == (1, SIZE, SIZE, 3) and batch.dtype == np.uint8
    assert pad_x == 0 and pad_y > 0 and scale == pytest.approx(SIZE / 640)
    assert (batch[0, : pad_y - 1] == lb.PAD_VALUE).all() and (batch[0, SIZE - pad_y + 1 :] == lb.PAD_VALUE).all()
    _, s2, px2, py2 = lb.letterbox(tall, SIZE)  # 427 x 300: padded left and right
    assert px2 > 0 and py2 == 0
    boxes = np.array([[10.0, 20.0, 100.0, 50.0], [0.0, 0.0, 640.0, 427.0]])
    model = lb.boxes_to_model(boxes, scale, pad_x, pad_y)
    np.testing.assert_allclose(lb.boxes_to_original(model, scale, pad_x, pad_y), boxes, atol=1e-9)
    # A box spilling into the padding is clipped to the photo.
    spill = lb.boxes_to_original(np.array([[-5.0, -5.0, 30.0, 30.0]]), scale, pad_x, pad_y, 640, 427)
    assert spill[0, 0] == 0 and spill[0, 1] == 0
    # The pixel content lands where the box mapping says: a bright square found back in place.
    img = np.zeros((427, 640, 3), np.uint8)
    img[100:200, 300:400] = 255
    b, sc, px, py = lb.letterbox(img, SIZE)
    ys, xs = np.nonzero(b[0, :, :, 0] > 127 + 64)
    found = lb.boxes_to_original(np.array([[xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]]),
                                 sc, px, py)
    np.testing.assert_allclose(found[0], [300, 100, 100, 100], atol=1.0 / sc + 1)


def test_maps_go_back_to_original_pixels(photos):
    img = np.zeros((427, 640, 3), np.uint8)
    _, scale, pad_x, pad_y = lb.letterbox(img, SIZE)
    labels = np.zeros((SIZE // 4, SIZE // 4), np.uint8)  # a stride-4 label map
    labels[pad_y // 4 : (SIZE - pad_y) // 4, : SIZE // 8] = 2  # left half of the photo
    back = lb.map_to_original(labels, scale, pad_x, pad_y, 640, 427, nearest=True)
    assert back.shape == (427, 640)
    assert (back[:, :300] == 2).all() and (back[:, 340:] == 0).all()
    probs = lb.map_to_original(np.random.default_rng(0).random((SIZE, SIZE, 3)), scale, pad_x, pad_y, 640, 427)
    assert probs.shape == (427, 640, 3)


def test_bad_images_are_refused():
    with pytest.raises(Invalid, match="uint8 RGB"):
        lb.letterbox(np.zeros((10, 10), np.uint8), SIZE)
    with pytest.raises(Invalid, match="uint8 RGB"):
        lb.letterbox(np.zeros((10, 10, 3), np.float32), SIZE)
