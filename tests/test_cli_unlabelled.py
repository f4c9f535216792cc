"""`dyntrain import --unlabelled`: images (folder or zip), texts and table rows into the labelling
queue of a real server; a failed import leaves nothing queued."""

from __future__ import annotations

import csv
import json
import zipfile

import httpx
from typer.testing import CliRunner

from dyntrain.cli import app
from dyntrain.ops.demo import digit_images
from tests.conftest import png_bytes
from tests.test_tabular_loop import fruit

runner = CliRunner()


def _queue(server, project: str) -> dict:
    return httpx.get(f"{server.url}/api/v1/projects/{project}/unlabelled", params={"limit": 500}, timeout=120).json()


def test_images_from_a_folder_and_a_zip(live_server, tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    images = digit_images(digits=(3, 8), per_class=3)
    for i, (_, data) in enumerate(images):
        (folder / ("nested" if i % 2 else "") / f"{i}.png").write_bytes(data)
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "notes.txt").write_text("not an image")
    r = runner.invoke(app, ["import", "--unlabelled", str(folder), "-p", "shop", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "queued 6 images" in r.output
    page = _queue(live_server, "shop")
    assert page["total"] == 6 and {i["filename"] for i in page["items"]} == {f"{i}.png" for i in range(6)}
    project = httpx.get(f"{live_server.url}/api/v1/projects/shop").json()
    assert project["task"] == "image-classification" and project["status"]["samples"] == 0
    # a zip: two new images, one already waiting (left out and said so)
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("more/a.png", png_bytes(1))
        zf.writestr("more/b.png", png_bytes(2))
        zf.writestr("more/c.png", images[0][1])
    r = runner.invoke(app, ["import", "--unlabelled", str(archive), "-p", "shop", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "queued 2 images" in r.output and "1 left out" in r.output
    assert _queue(live_server, "shop")["total"] == 8


def test_a_refused_image_queues_nothing(live_server, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):  # two chunks: the first one lands before the bad file is refused
        (folder / f"{i:02d}.png").write_bytes(png_bytes(i))
    (folder / "99.png").write_bytes(b"not really a png")
    r = runner.invoke(app, ["import", "--unlabelled", str(folder), "-p", "shop", "--url", live_server.url])
    assert r.exit_code == 1 and "99.png" in r.output
    assert httpx.get(f"{live_server.url}/api/v1/projects/shop").status_code == 404  # created, then removed
    httpx.post(f"{live_server.url}/api/v1/projects", json={"name": "shop"})
    r = runner.invoke(app, ["import", "--unlabelled", str(folder), "-p", "shop", "--url", live_server.url])
    assert r.exit_code == 1
    assert _queue(live_server, "shop")["total"] == 0


def test_texts_and_rows(live_server, tmp_path):
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("\n".join(json.dumps({"body": t}) for t in ["loved it", "dull", "great cast"]))
    r = runner.invoke(app, ["import", "--unlabelled", str(reviews), "-p", "reviews", "--text-column", "body",
                            "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert {i["preview"] for i in _queue(live_server, "reviews")["items"]} == {"loved it", "dull", "great cast"}
    r = runner.invoke(app, ["import", "--unlabelled", str(reviews), "-p", "reviews", "--url", live_server.url])
    assert r.exit_code == 1 and "--text-column" in r.output
    table = tmp_path / "fruit.csv"
    with open(table, "w", newline="") as f:
        w = csv.DictWriter(f, ["weight", "colour", "length", "fruit"])
        w.writeheader()
        w.writerows({**row, "fruit": ""} for row in fruit(5))
    r = runner.invoke(app, ["import", "--unlabelled", str(table), "-p", "fruit", "--task", "tabular-classification",
                            "--target", "fruit", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    items = _queue(live_server, "fruit")["items"]
    assert len(items) == 5 and all("fruit" not in i["preview"] for i in items)
