"""The image-to-image target: output images as labels (checked, canonical, kept as blobs), its
measures (SSIM against scikit-image's) and the inputs/ + outputs/ folders."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from dyntrain import tasks
from dyntrain.codecs import pairs
from dyntrain.kernel.errors import Invalid
from dyntrain.ops.edge_pairs import sample_crops, sobel_map

TARGET = tasks.get("image-to-image").target
META = {"width": 96, "height": 80}


def _png(array, mode=None, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, fmt)
    return buf.getvalue()


def _label(data: bytes, data_url: bool = False) -> str:
    text = base64.b64encode(data).decode()
    return json.dumps({"image": ("data:image/png;base64," + text) if data_url else text})


@pytest.fixture(scope="module")
def pair():
    photo = sample_crops(1, seed=3)[0]
    return photo, sobel_map(photo)


class _Blobs(dict):
    def put(self, data):
        from dyntrain.storage.blobs import sha256_hex

        self[sha256_hex(data)] = data
        return sha256_hex(data)

    def exists(self, sha):
        return sha in self

    def get(self, sha, default=None):
        return dict.get(self, sha, default)


def test_an_output_image_is_kept_once_as_its_canonical_png(pair):
    _, edges = pair
    blobs = _Blobs()
    key, ann = TARGET.stored_label(_label(_png(edges)), META, blobs)
    assert key == "pair" and ann["mode"] == "L" and set(ann) == {"image", "digest", "mode"}
    assert pairs.read_output(blobs[ann["image"]]).tolist() == edges.tolist()
    # the same pixels saved another way (RGB greys, a data: URL, PNG optimised) are the same annotation
    grey_rgb = np.repeat(edges[..., None], 3, axis=2)
    assert TARGET.stored_label(_label(_png(grey_rgb), data_url=True), META, blobs)[1] == ann
    # a stored output sent back by its hash stays what it was
    assert TARGET.stored_label({"image": ann["image"]}, META, blobs)[1] == ann
    # one repainted pixel is another output
    edges2 = edges.copy()
    edges2[0, 0] ^= 1
    assert TARGET.stored_label(_label(_png(edges2)), META, blobs)[1]["digest"] != ann["digest"]
    assert TARGET.blob_refs(ann) == [ann["image"]]


def test_colour_outputs_keep_their_colour(pair):
    photo, _ = pair
    _, ann = TARGET.read_label(_label(_png(photo[:, ::-1])), META)
    assert ann["mode"] == "RGB"


@pytest.mark.parametrize("raw, words", [
    ("edge map", 'a JSON object {"image"'),
    ('{"image": "not base64!"}', "not valid base64"),
    ('{"picture": "x"}', 'a JSON object {"image"'),
    ("{nope", "not valid JSON"),
])
def test_bad_labels_are_refused_saying_what_to_send(raw, words):
    with pytest.raises(Invalid) as err:
        TARGET.read_label(raw, META)
    assert words in err.value.message, err.value.message


def test_a_jpeg_or_an_output_of_another_size_is_refused(pair):
    photo, edges = pair
    with pytest.raises(Invalid, match="is a JPEG: send outputs as PNG"):
        TARGET.read_label(_label(_png(edges, fmt="JPEG")), META)
    with pytest.raises(Invalid, match="is 48x40 but the photo is 96x80"):
        TARGET.read_label(_label(_png(edges[::2, ::2])), META)
    with pytest.raises(Invalid, match="not a PNG"):
        TARGET.read_label(_label(b"GIF89a" + b"\0" * 20), META)
    with pytest.raises(Invalid, match="not stored in this installation"):
        TARGET.stored_label({"image": "0" * 64}, META, _Blobs())


def test_ssim_is_scikit_images_and_psnr_its_definition(pair):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    photo, edges = pair
    noisy = np.clip(edges.astype(int) + np.random.default_rng(0).integers(-30, 30, edges.shape), 0, 255).astype(np.uint8)
    ours = pairs.ssim(edges, noisy)
    theirs = structural_similarity(edges, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255)
    assert abs(ours - theirs) < 1e-6, (ours, theirs)
    shifted = np.roll(photo, 3, axis=1)
    theirs = structural_similarity(photo, shifted, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255, channel_axis=2)
    assert abs(pairs.ssim(photo, shifted) - theirs) < 1e-6
    assert abs(pairs.psnr(edges, noisy) - peak_signal_noise_ratio(edges, noisy, data_range=255)) < 1e-9
    assert pairs.ssim(edges, 255 - edges) < ours < pairs.ssim(edges, edges) == 1.0


def test_pair_folders_are_read_checked_and_written_back(tmp_path, pair):
    photo, edges = pair
    root = tmp_path / "edges"
    (root / "inputs").mkdir(parents=True)
    (root / "outputs").mkdir()
    for i in range(3):
        (root / "inputs" / f"p{i}.jpg").write_bytes(_png(photo, fmt="JPEG"))
        (root / "outputs" / f"p{i}.png").write_bytes(_png(edges))
    read = list(TARGET.read_files(root))
    assert [name for _, name, _ in read] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert pairs.read_output(pairs.png_from_text(json.loads(read[0][0])["image"])).tolist() == edges.tolist()
    (root / "outputs" / "p1.png").write_bytes(_png(edges[:40]))
    with pytest.raises(Invalid, match="outputs/p1.png is 96x40 but the photo is 96x80"):
        list(TARGET.read_files(root))
    (root / "outputs" / "p1.png").unlink()
    with pytest.raises(Invalid, match="1 photos have no output"):
        list(TARGET.read_files(root))


def test_a_photo_too_large_for_a_filter_is_refused_from_its_header():
    modality = tasks.get("image-to-image").modality
    big = _png(np.zeros((2100, 2100, 3), np.uint8))
    with pytest.raises(Invalid, match="2100x2100 pixels; an image filter takes photos of up to 4,194,304"):
        modality.decode(big)
    assert modality.decode(_png(np.zeros((80, 96, 3), np.uint8))).shape == (80, 96, 3)
