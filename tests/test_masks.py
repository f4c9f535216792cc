"""Mask codecs: indexed and colour PNGs, COCO polygons / RLE, canonical bytes, errors by name.

Masks here are painted on scikit-learn's real sample photo (china.jpg) or made by hand with
known answers; every codec is checked against an independent construction of the same mask.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.datasets import load_sample_images

from dyntrain.codecs import masks as M
from dyntrain.kernel.errors import Invalid

NAMES = ["background", "cup", "plate", "table"]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_sample_images().images[0]  # china.jpg, 640x427


@pytest.fixture(scope="module")
def mask(photo) -> np.ndarray:
    """A mask of the photo's size: three painted regions, one overlapping, a strip unlabelled."""
    h, w = photo.shape[:2]
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 300, w - 1, h - 1), fill=3)           # table
    draw.ellipse((100, 250, 260, 380), fill=2)               # plate on the table
    draw.polygon([(150, 200), (220, 210), (200, 330)], fill=1)  # cup on the plate
    m = np.array(img)
    m[:, :12] = M.UNLABELLED
    return m


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def rgb_of(mask: np.ndarray, colors: dict[str, list[int]], names=NAMES) -> np.ndarray:
    palette = np.zeros((256, 3), np.uint8)
    for i, n in enumerate(names):
        palette[i] = colors[n]
    palette[M.UNLABELLED] = M.UNLABELLED_COLOR
    return palette[mask]


# --- indexed PNG -------------------------------------------------------------------------------


def test_indexed_png_round_trip_is_byte_identical(mask, photo):
    png = M.encode_png(mask, NAMES)
    assert png.startswith(M.PNG_SIGNATURE)
    back = M.decode_png(png, NAMES, image_size=(photo.shape[1], photo.shape[0]))
    assert back.dtype == np.uint8 and np.array_equal(back, mask)
    assert M.encode_png(back, NAMES) == png
    # The palette carries the class colours, so viewers show the classes in colour.
    img = Image.open(io.BytesIO(png))
    assert img.mode == "P"
    assert np.array_equal(np.asarray(img.convert("RGB")), rgb_of(mask, M.default_colors(NAMES)))


def test_palette_index_not_colour_is_the_class(mask):
    # An editor may repaint the palette: the indices are what was painted.
    img = Image.frombytes("P", mask.shape[::-1], mask.tobytes())
    img.putpalette([255 - (i % 256) for i in range(768)])
    assert np.array_equal(M.decode_png(png_bytes(img), NAMES), mask)


def test_grey_1bit_and_16bit_pngs(mask):
    assert np.array_equal(M.decode_png(png_bytes(Image.fromarray(mask, "L")), NAMES), mask)
    binary = (mask == 1)
    assert np.array_equal(M.decode_png(png_bytes(Image.fromarray(binary).convert("1")), NAMES), binary.astype(np.uint8))
    wide = Image.fromarray(mask.astype(np.uint16))
    assert wide.mode.startswith("I;16")
    assert np.array_equal(M.decode_png(png_bytes(wide), NAMES), mask)


def test_class_id_beyond_the_classes_names_where(mask):
    bad = mask.copy()
    bad[40, 77] = 9
    with pytest.raises(Invalid) as e:
        M.decode_png(png_bytes(Image.fromarray(bad, "L")), NAMES, name="img_007.png")
    msg = e.value.message
    assert msg.startswith("img_007.png:") and "class id 9 at (x=77, y=40)" in msg and "4 classes" in msg


# --- colour PNG ---------------------------------------------------------------------------------


def test_rgb_colour_mapped_png_with_a_class_table(mask):
    table = {"background": [10, 10, 10], "cup": [250, 20, 20], "plate": [20, 250, 20], "table": [20, 20, 250]}
    rgb = rgb_of(mask, table)
    assert np.array_equal(M.decode_png(png_bytes(Image.fromarray(rgb)), NAMES, table), mask)
    # RGBA: fully transparent pixels are unlabelled whatever their colour.
    rgba = np.dstack([rgb, np.full(mask.shape, 255, np.uint8)])
    rgba[:, :12, 3] = 0
    rgba[:, :12, :3] = 77
    assert np.array_equal(M.decode_png(png_bytes(Image.fromarray(rgba, "RGBA")), NAMES, table), mask)


def test_unknown_colour_says_which_and_where(mask):
    table = M.default_colors(NAMES)
    rgb = rgb_of(mask, table)
    rgb[200:203, 300:302] = (255, 128, 0)
    with pytest.raises(Invalid) as e:
        M.decode_png(png_bytes(Image.fromarray(rgb)), NAMES, name="masks/b.png")
    msg = e.value.message
    assert "masks/b.png: unknown colour [255, 128, 0] at (x=300, y=200), 6 pixels" in msg
    assert "cup [128, 0, 0]" in msg  # what the table holds, so the user can compare
    assert e.value.details == [{"bad_pixels": 6}]


def test_jpeg_is_not_a_png(photo):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG")
    with pytest.raises(Invalid, match=r"^mask\.jpg: not a PNG file"):
        M.decode_png(buf.getvalue(), NAMES, name="mask.jpg")
    with pytest.raises(Invalid, match="corrupt or truncated PNG"):
        M.decode_png(M.PNG_SIGNATURE + b"\x00" * 20, NAMES)


def test_size_mismatch_with_the_image(mask, photo):
    small = Image.fromarray(mask, "L").resize((320, 213), Image.NEAREST)
    with pytest.raises(Invalid) as e:
        M.decode_png(png_bytes(small), NAMES, image_size=(photo.shape[1], photo.shape[0]), name="a.png")
    assert "a.png: the mask is 320x213 pixels but its image is 640x427" in e.value.message


def test_class_table_errors():
    with pytest.raises(Invalid, match="too many classes: 300"):
        M.check_class_table([f"c{i}" for i in range(300)])
    assert len(M.check_class_table([f"c{i}" for i in range(M.MAX_CLASSES)])) == 255
    with pytest.raises(Invalid, match="same colour"):
        M.check_class_table(["a", "b"], {"a": [1, 2, 3], "b": [1, 2, 3]})
    with pytest.raises(Invalid, match="reserved for unlabelled"):
        M.check_class_table(["a"], {"a": list(M.UNLABELLED_COLOR)})
    with pytest.raises(Invalid, match="unknown classes 'mug'"):
        M.check_class_table(["a"], {"mug": [1, 2, 3]})
    with pytest.raises(Invalid, match="unique"):
        M.check_class_table(["a", "a"])
    with pytest.raises(Invalid, match=r"\[r, g, b\]"):
        M.check_class_table(["a"], {"a": [1, 2, 300]})


def test_default_colors_are_distinct_and_background_black():
    colors = M.default_colors([f"c{i}" for i in range(255)])
    assert colors["c0"] == [0, 0, 0]
    assert len({tuple(c) for c in colors.values()}) == 255


# --- COCO ---------------------------------------------------------------------------------------


def test_coco_polygons_match_an_independent_drawing():
    h, w = 60, 80
    ann = [
        {"id": 1, "category_id": 7, "segmentation": [[10, 10, 70, 10, 70, 50, 10, 50]]},   # big: plate
        {"id": 2, "category_id": 3, "segmentation": [[30, 20, 50, 20, 50, 40, 30, 40]]},   # small: cup
    ]
    m = M.decode_coco(ann, height=h, width=w, category_to_class={3: 1, 7: 2})
    # The smaller annotation is painted last, so the cup stays a cup on the plate.
    assert m[30, 40] == 1 and m[15, 15] == 2 and m[55, 75] == 0
    # pycocotools rasterises a polygon's area: a 60x40 rectangle covers 2400 pixels.
    assert (m > 0).sum() == 2400 and (m == 1).sum() == 400
    ref = Image.new("L", (w, h), 0)
    ImageDraw.Draw(ref).rectangle((10, 10, 69, 49), fill=1)
    assert np.array_equal(m > 0, np.asarray(ref) > 0)
    # Partially annotated images: the rest can be unlabelled instead of background.
    part = M.decode_coco(ann[:1], height=h, width=w, category_to_class={3: 1, 7: 2}, unannotated=M.UNLABELLED)
    assert part[0, 0] == M.UNLABELLED and part[30, 40] == 2


def test_coco_rle_round_trip(mask):
    h, w = mask.shape
    anns = M.encode_coco(mask, {1: 11, 2: 12, 3: 13}, image_id=5)
    assert [a["category_id"] for a in anns] == [11, 12, 13]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in anns)
    assert anns[0]["area"] == float((mask == 1).sum())
    back = M.decode_coco(anns, height=h, width=w, category_to_class={11: 1, 12: 2, 13: 3})
    expect = np.where(mask == M.UNLABELLED, 0, mask)
    assert np.array_equal(back, expect)


def test_coco_uncompressed_rle():
    # Column-major runs (COCO's order): 3 zeros, 4 ones, 5 zeros in a 4x3 image.
    seg = {"size": [4, 3], "counts": [3, 4, 5]}
    m = M.decode_coco([{"category_id": 1, "segmentation": seg}], height=4, width=3, category_to_class={1: 1})
    expect = np.zeros(12, np.uint8)
    expect[3:7] = 1
    assert np.array_equal(m, expect.reshape(3, 4).T)


@pytest.mark.parametrize("ann, message", [
    ({"category_id": 9, "segmentation": [[0, 0, 5, 0, 5, 5]]}, "category_id 9 is not in the category table"),
    ({"category_id": 1, "segmentation": [[0, 0, 5, 0]]}, "at least 3 points"),
    ({"category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}}, "RLE is for a 5x5 image but the image is 12x10"),
    ({"category_id": 1, "segmentation": {"size": [10, 12], "counts": [3, 4]}}, "add up to 7 pixels, not 120"),
    ({"category_id": 1, "segmentation": "nonsense"}, "must be polygons"),
    ({"segmentation": []}, "needs 'category_id' and 'segmentation'"),
])
def test_coco_errors_name_the_annotation(ann, message):
    with pytest.raises(Invalid) as e:
        M.decode_coco([ann], height=10, width=12, category_to_class={1: 1}, name="instances.json image 4")
    assert e.value.message.startswith("instances.json image 4: annotation 0") and message in e.value.message


# --- canonical form -----------------------------------------------------------------------------


def test_same_mask_same_digest_whatever_the_file(mask):
    table = M.default_colors(NAMES)
    files = [
        M.encode_png(mask, NAMES),
        png_bytes(Image.fromarray(mask, "L"), compress_level=1),
        png_bytes(Image.fromarray(rgb_of(mask, table))),
    ]
    decoded = [M.decode_png(f, NAMES) for f in files]
    assert len({M.digest(d) for d in decoded}) == 1
    assert len(set(files)) == 3  # different bytes, same content
    repainted = mask.copy()
    repainted[100, 100] = 2
    assert M.digest(repainted) != M.digest(mask)
    # A transposed mask of the same pixels is a different mask.
    assert M.digest(np.ascontiguousarray(mask[:60, :60].T)) != M.digest(mask[:60, :60].copy())


def test_canonical_bytes_round_trip(mask):
    data = M.canonical_bytes(mask)
    assert np.array_equal(M.from_canonical_bytes(data), mask)
    with pytest.raises(Invalid, match="wrong header"):
        M.from_canonical_bytes(b"PNG" + data)
    with pytest.raises(Invalid, match="holds"):
        M.from_canonical_bytes(data[:-1])
    with pytest.raises(Invalid, match="2-D uint8"):
        M.canonical_bytes(mask.astype(np.int64))


# --- helpers for reports and serving ---------------------------------------------------------------


def test_class_areas_count_labelled_pixels_only(mask):
    areas = M.class_areas(mask, NAMES)
    labelled = int((mask != M.UNLABELLED).sum())
    assert sum(a["pixels"] for a in areas.values()) == labelled
    assert areas["cup"]["fraction"] == pytest.approx((mask == 1).sum() / labelled)


def test_overlay_paints_classes_but_not_background(mask, photo):
    img = Image.fromarray(photo)
    out = np.asarray(M.overlay(img, mask, NAMES, opacity=1.0))
    colors = M.default_colors(NAMES)
    assert np.array_equal(out[mask == 1][0], colors["cup"])
    assert np.array_equal(out[mask == 0], photo[mask == 0])
    assert np.array_equal(out[mask == M.UNLABELLED], photo[mask == M.UNLABELLED])
    with pytest.raises(Invalid, match="mask is 10x10"):
        M.overlay(img, np.zeros((10, 10), np.uint8), NAMES)


def test_difference_marks_only_wrong_labelled_pixels(mask, photo):
    predicted = mask.copy()
    predicted[mask == 1] = 2                      # the cup called plate
    predicted[:, :12] = 3                         # unlabelled: never wrong
    out = np.asarray(M.difference(Image.fromarray(photo), mask, predicted, color=(255, 0, 64)))
    wrong = np.all(out == (255, 0, 64), axis=-1)
    assert wrong.sum() >= (mask == 1).sum() and wrong[mask == 1].all()
    assert not wrong[:, :12].any()
    with pytest.raises(Invalid, match="same size"):
        M.difference(Image.fromarray(photo), mask, mask[:10])


def test_pixel_limit_is_checked_before_decoding():
    from dyntrain.kernel.errors import TooLarge

    big = png_bytes(Image.new("L", (200, 100), 0))
    with pytest.raises(TooLarge, match="big.png: the mask is 200x100 = 20000 pixels; the limit is 10000"):
        M.decode_png(big, NAMES, name="big.png", max_pixels=10_000)
    assert M.decode_png(big, NAMES, max_pixels=20_000).shape == (100, 200)
