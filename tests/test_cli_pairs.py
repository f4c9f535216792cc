"""Image pairs through the CLI: `dyntrain import` reads inputs/ + outputs/ folders (or a zip) into an
image-to-image project as one dataset version, `dyntrain export` writes them back, a bad output is
refused naming its file with nothing uploaded, and `dyntrain predict --out` writes the output PNG."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dyntrain.cli import app
from dyntrain.codecs import pairs
from dyntrain.ops.edge_pairs import sample_crops, sobel_map

runner = CliRunner(env={"COLUMNS": "200"})


def _png(array, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos():
    return sample_crops(5, seed=7)


def _folder(root, photos):
    (root / "inputs").mkdir(parents=True)
    (root / "outputs").mkdir()
    for i, p in enumerate(photos):
        (root / "inputs" / f"p{i}.jpg").write_bytes(_png(p, "JPEG"))
        (root / "outputs" / f"p{i}.png").write_bytes(_png(sobel_map(p)))
    return root


def _stored(client, project):
    """{file name: output pixels} of a project's samples, read back through the API."""
    out = {}
    for s in client.get(f"/api/v1/projects/{project}/samples").json()["items"]:
        png = client.get(f"/api/v1/projects/{project}/samples/{s['id']}/blobs/{s['annotation']['image']}").content
        out[s["meta"]["filename"]] = pairs.read_output(png).tolist()
    return out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pair_folders_import_export_and_a_bad_output(live_server, photos, tmp_path, client):
    url = ["--url", live_server.url]
    folder = _folder(tmp_path / "edges", photos)
    r = runner.invoke(app, ["import", str(folder), "-p", "edges", "--task", "image-to-image", *url])
    assert r.exit_code == 0, r.output
    assert "imported 5 examples" in r.output and "dataset version 1" in r.output
    first = _stored(client, "edges")
    assert first == {f"p{i}.jpg": sobel_map(p).tolist() for i, p in enumerate(photos)}

    out = tmp_path / "out"
    r = runner.invoke(app, ["export", "edges", "--out", str(out), *url])
    assert r.exit_code == 0, r.output
    assert sorted(f.name for f in (out / "outputs").iterdir()) == [f"p{i}.png" for i in range(5)]
    archive = shutil.make_archive(str(tmp_path / "again"), "zip", out)
    r = runner.invoke(app, ["import", archive, "-p", "again", "--task", "image-to-image", *url])
    assert r.exit_code == 0, r.output
    assert _stored(client, "again") == first

    # a JPEG output is refused naming its file, and nothing of the set lands
    (folder / "outputs" / "p3.png").write_bytes(_png(sobel_map(photos[3]), "JPEG"))
    r = runner.invoke(app, ["import", str(folder), "-p", "bad", "--task", "image-to-image", *url])
    assert r.exit_code != 0 and "outputs/p3.png is a JPEG" in r.output, r.output
    assert client.get("/api/v1/projects/bad/samples").json().get("items", []) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_predict_writes_the_output_image(live_server, core, photos, tmp_path):
    """A served filter (trained here in-process) answers the CLI: the output PNG written beside."""
    from dyntrain.learners.filter import FilterCNN
    from dyntrain.registry.models import register_model, set_alias
    from dyntrain.storage.rows import ProjectRow

    runner.invoke(app, ["import", str(_folder(tmp_path / "k", photos)), "-p", "k", "--task", "image-to-image",
                        "--url", live_server.url])
    learner = FilterCNN(steps=100).fit(photos, [sobel_map(p) for p in photos])
    path = learner.export_onnx(tmp_path / "model.onnx")
    with core.db.write() as s:
        pid = s.query(ProjectRow).filter_by(name="k").one().id
    version = register_model(core, pid, path, {"labels": [], "task": "image-to-image"}, run_id=None)
    with core.db.write() as s:
        set_alias(s, s.get(ProjectRow, pid), version.version, "test")
    (tmp_path / "photo.png").write_bytes(_png(photos[1]))
    r = runner.invoke(app, ["predict", "k", str(tmp_path / "photo.png"), "--out", str(tmp_path / "said"),
                            "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "L 96x80" in r.output and "v1" in r.output
    written = pairs.read_output((tmp_path / "said" / "photo.png").read_bytes())
    assert np.array_equal(written, learner.predict([photos[1]])[0])
