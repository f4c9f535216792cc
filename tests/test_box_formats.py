"""Box annotation formats (box_formats.py): COCO JSON, Pascal VOC XML, YOLO txt, folders and zips.

Samples are written by hand in the style of the tools that produce them (CVAT / Label Studio
COCO, LabelImg VOC, Ultralytics and Darknet YOLO), with known boxes; images are scikit-learn's
real sample photos (china.jpg and flower.jpg, 640×427).
"""

from __future__ import annotations

import doctest
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from dyntrain.codecs import box_formats as B
from dyntrain.codecs.box_formats import AnnotatedImage
from dyntrain.kernel.errors import Invalid, TooLarge

W, H = 640, 427


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    out = {}
    for name, array in zip(("china.jpg", "flower.jpg"), load_sample_images().images):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "JPEG", quality=80)
        out[name] = buf.getvalue()
    return out


def box(label, x, y, w, h):
    return {"label": label, "x": float(x), "y": float(y), "w": float(w), "h": float(h)}


SAMPLE = [AnnotatedImage("china.jpg", W, H, [box("roof", 10, 20, 300.5, 120.25), box("tree", 0, 0, W, H)]),
          AnnotatedImage("flower.jpg", W, H, [box("flower", 100.75, 50, 200, 300)])]
CLASSES = ["roof", "tree", "flower"]


def problems(exc: pytest.ExceptionInfo) -> list[dict]:
    assert isinstance(exc.value, Invalid)
    return exc.value.details


def test_doctests_pass():
    assert doctest.testmod(B).failed == 0


# --- readers on hand-written files ------------------------------------------------------------

COCO_CVAT = {
    "licenses": [{"name": "", "id": 0, "url": ""}],
    "info": {"contributor": "", "description": "", "version": "1.0"},
    "categories": [{"id": 3, "name": "roof", "supercategory": ""}, {"id": 7, "name": "tree", "supercategory": ""}],
    "images": [{"id": 1, "width": 640, "height": 427, "file_name": "china.jpg", "license": 0, "date_captured": 0},
               {"id": 2, "width": 640, "height": 427, "file_name": "flower.jpg"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[10, 20, 310, 20, 310, 140]], "area": 36000.0,
         "bbox": [10.0, 20.0, 300.0, 120.0], "iscrowd": 0, "attributes": {"occluded": False}},
        {"id": 2, "image_id": 1, "category_id": 7, "segmentation": {"counts": [0, 5], "size": [427, 640]},
         "area": 10, "bbox": [400, 100, 50.5, 60.25], "iscrowd": 1},
    ],
}


def test_coco_reader_takes_boxes_categories_in_file_order_and_ignores_extras():
    ds = B.read_coco(json.dumps(COCO_CVAT))
    assert ds.format == "coco" and ds.classes == ["roof", "tree"]
    china, flower = ds.images
    assert (china.filename, china.width, china.height) == ("china.jpg", 640, 427)
    assert china.boxes == [box("roof", 10, 20, 300, 120), box("tree", 400, 100, 50.5, 60.25)]
    assert flower.boxes == []


VOC_LABELIMG = b"""<annotation>
\t<folder>JPEGImages</folder>
\t<filename>china.jpg</filename>
\t<path>/home/me/voc/JPEGImages/china.jpg</path>
\t<source><database>Unknown</database></source>
\t<size><width>640</width><height>427</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object><name>roof</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>11</xmin><ymin>21</ymin><xmax>310</xmax><ymax>140</ymax></bndbox></object>
\t<object><name>tree</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>640</xmax><ymax>427</ymax></bndbox></object>
</annotation>
"""


def test_voc_reader_uses_one_based_inclusive_pixel_indices():
    img = B.read_voc(VOC_LABELIMG, source="Annotations/china.xml")
    assert (img.filename, img.width, img.height) == ("china.jpg", 640, 427)
    # xmin 11 .. xmax 310 are 1-based pixel columns 10..309: x=10, w=300; 1..640 covers the image
    assert img.boxes == [box("roof", 10, 20, 300, 120), box("tree", 0, 0, 640, 427)]


def test_voc_written_by_a_zero_based_tool_reads_within_the_tolerance_unclipped():
    zero_based = VOC_LABELIMG.replace(b"<xmin>1</xmin><ymin>1</ymin>", b"<xmin>0</xmin><ymin>0</ymin>")
    tree = B.read_voc(zero_based).boxes[1]
    assert tree == box("tree", -1, -1, 641, 428)  # 1 px out, kept as it is: nothing is clipped


def test_yolo_reader_with_classes_txt_mapping_and_callable_sizes():
    labels = {"china.jpg": "0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.2 0.4\n\n", "flower.jpg": ""}
    sizes = {"china.jpg": (640, 427), "flower.jpg": (640, 427)}
    classes = B.read_yolo_classes(b"roof\ntree\n\n")
    by_map = B.read_yolo(labels, classes, sizes)
    by_call = B.read_yolo(labels, classes, lambda name: sizes[name])
    assert by_map == by_call and by_map.classes == ["roof", "tree"]
    china, flower = by_map.images
    assert china.boxes[0] == pytest.approx(box("roof", 240, 106.75, 160, 213.5))
    assert china.boxes[1]["label"] == "tree" and china.boxes[1]["x"] == pytest.approx(0.0)
    assert flower.boxes == []


@pytest.mark.parametrize("source,text", [
    ("data.yaml", "path: ../datasets/shelf\ntrain: images/train\nval: images/val\nnc: 2\nnames: ['roof', 'tree']\n"),
    ("data.yaml", "train: images\nnames:\n  0: roof\n  1: tree\n"),
    ("obj.names", "roof\ntree\n"),
    ("classes.txt", "\ufeffroof\r\ntree\r\n"),
])
def test_yolo_class_names_from_each_tool(source, text):
    assert B.read_yolo_classes(text.encode("utf-8"), source=source) == ["roof", "tree"]


def test_yolo_class_name_files_that_contradict_themselves_are_refused():
    with pytest.raises(Invalid, match="nc is 3"):
        B.read_yolo_classes(b"nc: 3\nnames: [a, b]\n", source="data.yaml")
    with pytest.raises(Invalid, match="without gaps"):
        B.read_yolo_classes(b"names: {0: a, 2: b}\n", source="data.yaml")
    with pytest.raises(Invalid, match="listed twice"):
        B.read_yolo_classes(b"a\nb\na\n")


# --- writers --------------------------------------------------------------------------------


def test_coco_writer_output_loads_in_pycocotools_with_the_same_boxes(tmp_path):
    from pycocotools.coco import COCO

    path = tmp_path / "annotations.json"
    path.write_bytes(B.write_coco(SAMPLE, CLASSES))
    coco = COCO(str(path))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert [names[i] for i in sorted(names)] == CLASSES
    for image_id, img in zip(sorted(coco.getImgIds()), SAMPLE):
        info = coco.loadImgs(image_id)[0]
        assert (info["file_name"], info["width"], info["height"]) == (img.filename, W, H)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert [box(names[a["category_id"]], *a["bbox"]) for a in anns] == img.boxes


def test_voc_writer_output_follows_the_devkit_convention():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(B.write_voc(SAMPLE[0]))
    assert root.findtext("filename") == "china.jpg" and root.findtext("size/width") == "640"
    corners = [[o.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")] for o in root.findall("object")]
    assert corners == [["11", "21", "310.5", "140.25"], ["1", "1", "640", "427"]]
    assert [o.findtext("name") for o in root.findall("object")] == ["roof", "tree"]


def test_yolo_writer_normalises_to_six_decimals_and_writes_empty_files_for_empty_images():
    text = B.write_yolo(SAMPLE[0], CLASSES).decode()
    assert text.splitlines()[1] == "1 0.500000 0.500000 1.000000 1.000000"
    assert text.splitlines()[0] == f"0 {(10 + 150.25) / W:.6f} {(20 + 60.125) / H:.6f} {300.5 / W:.6f} {120.25 / H:.6f}"
    assert B.write_yolo(AnnotatedImage("e.jpg", W, H, []), CLASSES) == b""
    names = B.write_yolo_data_yaml(CLASSES)
    assert B.read_yolo_classes(names, source="data.yaml") == CLASSES


def test_writers_refuse_what_could_not_be_read_back():
    bad = [AnnotatedImage("a.jpg", 10, 10, [box("roof", 5, 5, 9, 2), box("mug", 0, 0, 1, 1)])]
    with pytest.raises(Invalid) as exc:
        B.write_coco(bad, ["roof"])
    reasons = " | ".join(d["reason"] for d in problems(exc))
    assert "4 px outside the 10×10 image" in reasons and "unknown class 'mug'" in reasons
    same_stem = [AnnotatedImage("a.jpg", 10, 10, []), AnnotatedImage("a.png", 10, 10, [])]
    with pytest.raises(Invalid, match="same label file"):
        B.annotation_files(same_stem, ["roof"], "yolo")
    with pytest.raises(Invalid, match="relative path"):
        B.annotation_files([AnnotatedImage("../a.jpg", 10, 10, [])], ["roof"], "voc")


# --- round trips through folders and zips ---------------------------------------------------


@pytest.mark.parametrize("fmt", B.FORMATS)
@pytest.mark.parametrize("container", ["folder", "zip"])
def test_written_data_set_reads_back_and_writes_the_same_bytes(fmt, container, photos, tmp_path):
    out = tmp_path / ("data.zip" if container == "zip" else "data")
    B.write_dataset(out, SAMPLE, CLASSES, fmt, photos)
    ds = B.read_dataset(out)
    assert ds.format == fmt
    assert [i.filename for i in ds.images] == ["china.jpg", "flower.jpg"]
    for got, want in zip(ds.images, SAMPLE):
        assert (got.width, got.height) == (W, H)
        if fmt == "yolo":  # 6 normalised decimals: within 0.0004 px on a 640 px side
            assert got.boxes == [pytest.approx(b, abs=4e-4) for b in want.boxes]
        else:
            assert got.boxes == want.boxes
    # VOC has no class list: classes come in order of first appearance
    classes = ds.classes
    assert set(classes) == set(CLASSES)
    again, _ = B.annotation_files(ds.images, classes, fmt)
    first, _ = B.annotation_files(SAMPLE, classes, fmt)
    assert again == first  # byte for byte
    assert {img.filename: data for img, data in B.iter_images(out, ds)} == photos
    if container == "zip":  # the same data set gives the same zip
        B.write_dataset(tmp_path / "again.zip", ds.images, CLASSES, fmt, photos)
        assert (tmp_path / "again.zip").read_bytes() == out.read_bytes()


def test_tool_layouts_are_found_ultralytics_splits_darknet_and_cvat(photos, tmp_path):
    ultra = tmp_path / "ultra"
    for split, name in (("train", "china.jpg"), ("val", "flower.jpg")):
        (ultra / "images" / split).mkdir(parents=True)
        (ultra / "labels" / split).mkdir(parents=True)
        (ultra / "images" / split / name).write_bytes(photos[name])
    (ultra / "labels" / "train" / "china.txt").write_text("1 0.5 0.5 1 1\n")
    (ultra / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [roof, tree]\n")
    ds = B.read_dataset(ultra)
    assert {i.filename: len(i.boxes) for i in ds.images} == {"train/china.jpg": 1, "val/flower.jpg": 0}
    assert ds.paths["train/china.jpg"] == "images/train/china.jpg"

    darknet = tmp_path / "darknet"
    (darknet / "obj").mkdir(parents=True)
    (darknet / "obj" / "china.jpg").write_bytes(photos["china.jpg"])
    (darknet / "obj" / "china.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (darknet / "obj.names").write_text("roof\n")
    (darknet / "train.txt").write_text("data/obj/china.jpg\n")  # an image list, not labels
    ds = B.read_dataset(darknet)
    assert ds.images[0].boxes == [pytest.approx(box("roof", 160, 106.75, 320, 213.5))]

    cvat = tmp_path / "cvat.zip"  # CVAT: annotations/instances_default.json + images/…, inside one top folder
    with zipfile.ZipFile(cvat, "w") as zf:
        zf.writestr("task_1/annotations/instances_default.json", json.dumps(COCO_CVAT))
        for name, data in photos.items():
            zf.writestr(f"task_1/images/{name}", data)
    ds = B.read_dataset(cvat)
    assert ds.paths == {"china.jpg": "images/china.jpg", "flower.jpg": "images/flower.jpg"}
    assert ds.images[0].boxes == B.read_coco(json.dumps(COCO_CVAT)).images[0].boxes


def test_coco_without_sizes_takes_them_from_the_images(photos, tmp_path):
    doc = json.loads(json.dumps(COCO_CVAT))
    for entry in doc["images"]:
        del entry["width"], entry["height"]
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    for name, data in photos.items():
        (tmp_path / name).write_bytes(data)
    assert [(i.width, i.height) for i in B.read_dataset(tmp_path).images] == [(640, 427), (640, 427)]
    with pytest.raises(Invalid, match="is not two positive whole numbers"):
        B.read_coco(json.dumps(doc))  # alone, a COCO file must give its sizes


# --- every error, named by file and box --------------------------------------------------------


def test_coco_errors_are_all_collected_naming_file_and_box():
    doc = json.loads(json.dumps(COCO_CVAT))
    doc["annotations"] += [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [600, 0, 50, 10]},      # 10 px past the right edge
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [0, 0, 0, 10]},         # no width
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, -5]},        # negative height
        {"id": 13, "image_id": 1, "category_id": 99, "bbox": [0, 0, 10, 10]},       # unknown category
        {"id": 14, "image_id": 42, "category_id": 3, "bbox": [0, 0, 10, 10]},       # unknown image
        {"id": 15, "image_id": 2, "category_id": 3, "bbox": [0, 0, "ten"]},         # malformed
        {"id": 16, "image_id": 2, "category_id": 3, "bbox": [639.5, 426.5, 1.4, 1.4]},  # 0.9 px out: accepted
    ]
    with pytest.raises(Invalid) as exc:
        B.read_coco(json.dumps(doc), source="instances.json")
    details = problems(exc)
    assert len(details) == 6 and exc.value.message.startswith("6 problems in instances.json")
    by_box = {(d["file"], d.get("box")): d for d in details}
    outside = by_box[("china.jpg", 2)]
    assert outside["value"] == [600, 0, 50, 10] and "annotation 10" in outside["reason"]
    assert "10 px outside the 640×427 image" in outside["reason"]
    assert "no area" in by_box[("china.jpg", 3)]["reason"] and "no area" in by_box[("china.jpg", 4)]["reason"]
    assert "unknown category_id 99" in by_box[("china.jpg", 5)]["reason"]
    assert "annotations[6] (id 14) names image_id 42" in by_box[("instances.json", 6)]["reason"]
    assert "'bbox' must be [x, y, width, height]" in by_box[("flower.jpg", 0)]["reason"]


def test_voc_errors_name_the_file_the_box_and_its_corners():
    bad = VOC_LABELIMG.replace(b"<xmax>310</xmax>", b"<xmax>700</xmax>").replace(
        b"<name>tree</name>", b"<name>bush</name>")
    with pytest.raises(Invalid) as exc:
        B.read_voc(bad, source="Annotations/china.xml", classes=["roof", "tree"])
    first, second = problems(exc)
    assert first["file"] == "Annotations/china.xml" and first["box"] == 0
    assert first["value"] == {"xmin": "11", "ymin": "21", "xmax": "700", "ymax": "140"}
    assert "60 px outside the 640×427 image" in first["reason"]
    assert second["box"] == 1 and "unknown class 'bush'" in second["reason"]
    inverted = VOC_LABELIMG.replace(b"<xmin>11</xmin>", b"<xmin>400</xmin>")
    with pytest.raises(Invalid, match="no area"):
        B.read_voc(inverted)
    with pytest.raises(Invalid, match="not well-formed XML"):
        B.read_voc(b"<annotation><object></annotation>")
    with pytest.raises(Invalid, match="not a Pascal VOC annotation"):
        B.read_voc(b"<html/>")


def test_voc_entity_expansion_is_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;">]>'
            b"<annotation><filename>&y;</filename></annotation>")
    with pytest.raises(Invalid, match="refused"):
        B.read_voc(bomb)


def test_yolo_errors_name_the_label_file_line_and_values():
    lines = ["0 0.5 0.5 0.2 0.2", "7 0.5 0.5 0.2 0.2", "0 0.95 0.5 0.2 0.2", "0 0.5 0.5 0 0.1", "0 0.5 0.5",
             "x 1 1 1 1"]
    labels = {"a.jpg": "\n".join(lines) + "\n", "b.jpg": "0 0.5 0.5 0.1 0.1\n"}
    with pytest.raises(Invalid) as exc:
        B.read_yolo(labels, ["roof", "tree"], {"a.jpg": (100, 50)}, sources={"a.jpg": "labels/a.txt"})
    details = problems(exc)
    assert [(d["file"], d.get("box")) for d in details] == [
        ("labels/a.txt", 1), ("labels/a.txt", 2), ("labels/a.txt", 3), ("labels/a.txt", 4), ("labels/a.txt", 5),
        ("b.jpg", None)]
    assert "unknown class index 7" in details[0]["reason"] and details[0]["value"] == "7 0.5 0.5 0.2 0.2"
    assert "line 3" in details[1]["reason"] and "5 px outside the 100×50 image" in details[1]["reason"]
    assert "no area" in details[2]["reason"]
    assert "5 values" in details[3]["reason"] and "whole number" in details[4]["reason"]
    assert "image b.jpg is missing" in details[5]["reason"]


def test_more_than_a_hundred_problems_are_counted_and_the_first_hundred_listed():
    labels = {"a.jpg": "\n".join("3 0.5 0.5 0.1 0.1" for _ in range(150))}
    with pytest.raises(Invalid) as exc:
        B.read_yolo(labels, ["roof"], {"a.jpg": (10, 10)})
    assert exc.value.message.startswith("150 problems") and len(problems(exc)) == 100


def test_images_listed_but_missing_in_each_format(photos, tmp_path):
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "annotations.json").write_text(json.dumps(COCO_CVAT))
    (coco / "china.jpg").write_bytes(photos["china.jpg"])
    with pytest.raises(Invalid) as exc:
        B.read_dataset(coco)
    assert problems(exc) == [{"file": "annotations.json", "reason": "the image flower.jpg is listed but missing from "
                              "the data set; add it or remove its annotations"}]

    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "china.xml").write_bytes(VOC_LABELIMG)
    with pytest.raises(Invalid) as exc:
        B.read_dataset(voc)
    assert problems(exc)[0]["file"] == "Annotations/china.xml" and "china.jpg is listed but missing" in \
        problems(exc)[0]["reason"]

    yolo = tmp_path / "yolo"
    (yolo / "labels").mkdir(parents=True)
    (yolo / "images").mkdir()
    (yolo / "images" / "china.jpg").write_bytes(photos["china.jpg"])
    (yolo / "labels" / "china.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "labels" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "classes.txt").write_text("roof\n")
    with pytest.raises(Invalid) as exc:
        B.read_dataset(yolo)
    assert [d["file"] for d in problems(exc)] == ["labels/gone.txt"]


def test_declared_size_must_match_the_upright_image_exif_named(tmp_path):
    raw = Image.new("RGB", (64, 32), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (a phone photo)
    buf = io.BytesIO()
    raw.save(buf, "JPEG", exif=exif)
    assert B.image_size(buf.getvalue()) == (32, 64)
    (tmp_path / "p.jpg").write_bytes(buf.getvalue())
    (tmp_path / "p.xml").write_bytes(B.write_voc(AnnotatedImage("p.jpg", 64, 32, [box("mug", 0, 0, 10, 10)])))
    with pytest.raises(Invalid) as exc:
        B.read_dataset(tmp_path)
    assert "say 64×32 but the image is 32×64" in problems(exc)[0]["reason"]
    assert "EXIF orientation" in problems(exc)[0]["reason"]


def test_malformed_and_ambiguous_data_sets(tmp_path):
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(Invalid, match="no box annotations found"):
        B.read_dataset(tmp_path)  # a .json without "images" is not taken for COCO
    (tmp_path / "annotations.json").write_text('{"images": [oops]}')
    with pytest.raises(Invalid, match="annotations.json is not valid JSON"):
        B.read_dataset(tmp_path)
    (tmp_path / "annotations.json").write_text(json.dumps(COCO_CVAT))
    (tmp_path / "a.xml").write_bytes(VOC_LABELIMG)
    with pytest.raises(Invalid, match="several formats"):
        B.read_dataset(tmp_path)


# --- zip safety -----------------------------------------------------------------------------


def zip_of(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../escape.jpg", "data/../../escape.txt", "/etc/passwd", "C:/win.ini"])
def test_zip_with_unsafe_paths_is_refused_before_anything_is_read(evil, photos, tmp_path):
    path = zip_of(tmp_path / "evil.zip", {"annotations.json": json.dumps(COCO_CVAT).encode(), evil: b"x"})
    with pytest.raises(Invalid, match="unsafe entries"):
        B.read_dataset(path)
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_zip_bomb_and_size_limits(photos, tmp_path):
    bomb = zip_of(tmp_path / "bomb.zip", {"classes.txt": b"roof\n", "labels/a.txt": b"\n" * (50 * 1024 * 1024)})
    with pytest.raises(Invalid, match="zip bomb"):
        B.read_dataset(bomb)
    many = zip_of(tmp_path / "many.zip", {f"labels/{i}.txt": b"" for i in range(20)})
    with pytest.raises(Invalid, match="more than 10 files"):
        B.read_dataset(many, max_files=10)
    big = zip_of(tmp_path / "big.zip", {"classes.txt": b"roof\n" * 100})
    with pytest.raises(TooLarge, match="inflates to 500 bytes"):
        B.read_dataset(big, max_total_bytes=100)
    ok = tmp_path / "ok.zip"
    B.write_dataset(ok, SAMPLE, CLASSES, "coco", photos)
    with pytest.raises(TooLarge, match="max_upload_bytes|DYNTRAIN_MAX_UPLOAD_BYTES"):
        B.read_dataset(ok, max_bytes=1000)  # each photo is far over 1000 bytes


def test_symlink_out_of_the_folder_is_refused(photos, tmp_path):
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(photos["china.jpg"])
    data = tmp_path / "data"
    data.mkdir()
    (data / "annotations.json").write_text(json.dumps({**COCO_CVAT, "images": COCO_CVAT["images"][:1],
                                                        "annotations": []}))
    (data / "china.jpg").symlink_to(outside)
    with pytest.raises(Exception, match="outside"):
        B.read_dataset(data)
