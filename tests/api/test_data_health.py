"""Data health over the API and `dyntrain doctor`, on real images; augmentation preview."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images
from typer.testing import CliRunner

from dyntrain.cli import app


def _crops(photo: np.ndarray, n: int, size=96, start=0) -> list[bytes]:
    """Different real crops of one photo (a "class" of similar-looking images)."""
    out = []
    h, w, _ = photo.shape
    for k in range(start, start + n):
        y, x = (37 * k) % (h - size), (53 * k) % (w - size)
        buf = io.BytesIO()
        Image.fromarray(photo[y:y + size, x:x + size]).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _upload(client, files, labels):
    r = client.post("/api/v1/projects/shop/samples", files=[("files", (f"{i}.png", b)) for i, b in enumerate(files)],
                    data={"labels": labels})
    assert r.status_code == 201, r.text
    return [s["id"] for s in r.json()["samples"]]


def test_health_finds_planted_problems(client, live_server):
    china, flower = load_sample_images().images
    client.post("/api/v1/projects", json={"name": "shop", "settings": {"auto_train": False}})
    temple = _crops(china, 8)
    flowers = _crops(flower, 8)
    _upload(client, temple + flowers, ["temple"] * 8 + ["flower"] * 8)
    # planted: an exact duplicate, a re-encoded near duplicate, the same image under another label,
    # and a real flower photo filed as a temple (likely mislabelled)
    near = io.BytesIO()
    Image.open(io.BytesIO(temple[1])).convert("RGB").resize((90, 90)).save(near, "JPEG", quality=90)
    dup_ids = _upload(client, [temple[0], near.getvalue(), flowers[2], _crops(flower, 1, start=20)[0]],
                      ["temple", "temple", "temple", "temple"])
    report = client.get("/api/v1/projects/shop/health").json()
    assert report["checked_mislabelling"] is True
    kinds = {f["kind"]: f for f in report["findings"]}
    assert dup_ids[0] in kinds["exact_duplicate"]["sample_ids"]
    assert dup_ids[1] in kinds["near_duplicate"]["sample_ids"]
    assert dup_ids[2] in kinds["conflicting_labels"]["sample_ids"]
    assert dup_ids[3] in kinds["likely_mislabelled"]["sample_ids"]
    assert all(f["advice"] for f in report["findings"])

    r = CliRunner().invoke(app, ["doctor", "shop", "--url", live_server.url])
    assert "conflicting_labels" in r.output and "what to do" in r.output
    assert r.exit_code in (0, 2)
    assert client.get("/api/v1/projects/nope/health").status_code == 404


def test_augmentation_preview_grid(client):
    client.post("/api/v1/projects", json={"name": "shop", "settings": {"auto_train": False}})
    china, _ = load_sample_images().images
    sid = _upload(client, _crops(china, 1), ["temple"])[0]
    r = client.get("/api/v1/projects/shop/augmentation-preview", params={"sample": sid, "n": 4, "preset": "strong"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(r.content))
    assert grid.width > 224 and grid.height >= 224
    assert client.get("/api/v1/projects/shop/augmentation-preview", params={"sample": 999}).status_code == 404
    r = client.get("/api/v1/projects/shop/augmentation-preview", params={"sample": sid, "preset": "wild"})
    assert r.status_code == 422
