"""Every size limit is a setting and is answered with a clear 413 (or, for one bad file among
several, a 422 naming it): what was sent, the limit, and the setting that changes it."""

from __future__ import annotations

import struct
import zlib

import pytest
from typer.testing import CliRunner

from dyntrain.codecs.archive import read_text_records
from dyntrain.cli import app as cli
from dyntrain.kernel.errors import TooLarge
from tests.conftest import png_bytes


def _too_large(r, setting: str, limit: int) -> str:
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert f"the limit is {limit}" in error["message"] and f"DYNTRAIN_{setting.upper()}" in error["message"]
    return error["message"]


@pytest.fixture
def shop(client):
    assert client.post("/api/v1/projects", json={"name": "shop", "settings": {"auto_train": False}}).status_code == 201
    return client


def test_request_body_over_the_limit_is_refused_before_parsing(shop, core):
    files = [("files", (f"{i}.png", png_bytes(i, size=(30, 30)))) for i in range(3)]
    core.settings.max_request_bytes = limit = len(files[0][1][1]) + 1000  # room for one file, not three
    r = shop.post("/api/v1/projects/shop/samples", files=files, data={"label": "mug"})
    message = _too_large(r, "max_request_bytes", limit)
    assert "the request body is" in message
    assert r.headers["x-request-id"]  # the request-id middleware sees refusals too
    assert shop.get("/api/v1/projects/shop/samples").json()["total"] == 0
    # A small one still goes through.
    r = shop.post("/api/v1/projects/shop/samples", files=files[:1], data={"label": "mug"})
    assert r.status_code == 201, r.text


def test_streamed_body_without_content_length_is_counted(shop, core):
    core.settings.max_request_bytes = 1000

    def chunks():
        for _ in range(10):
            yield b'{"name": "' + b"x" * 300

    r = shop.post("/api/v1/projects", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    _too_large(r, "max_request_bytes", 1000)


def test_too_many_files_in_one_request(shop, core):
    core.settings.max_files_per_request = 3
    files = [("files", (f"{i}.png", png_bytes(i))) for i in range(4)]
    r = shop.post("/api/v1/projects/shop/samples", files=files, data={"label": "mug"})
    assert "4 files in one request" in _too_large(r, "max_files_per_request", 3)
    r = shop.post("/api/v1/projects/shop/predict", files=files)  # checked before any model is needed
    _too_large(r, "max_files_per_request", 3)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (RGB) with an empty image stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _png_bomb(width: int, height: int) -> bytes:
    """A real, valid, all-black greyscale PNG: tiny on disk, width*height pixels once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one byte per pixel
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_images_with_too_many_pixels_are_refused_without_decoding(shop, core):
    bomb = _png_bomb(7000, 7000)  # 49 Mpx > the default 40 Mpx, in a few tens of kB
    assert len(bomb) < 200_000
    fake = _png_header(100_000, 100_000)  # 10 Gpx claimed by the header alone
    r = shop.post("/api/v1/projects/shop/samples", data={"label": "mug"},
                  files=[("files", ("bomb.png", bomb)), ("files", ("fake.png", fake)), ("files", ("ok.png", png_bytes(1)))])
    assert r.status_code == 422, r.text  # one bad file rejects the batch, each named with its reason
    reasons = {d["file"]: d["reason"] for d in r.json()["error"]["details"]}
    assert set(reasons) == {"bomb.png", "fake.png"}
    assert "7000x7000 = 49000000 pixels; the limit is 40000000" in reasons["bomb.png"]
    assert all("DYNTRAIN_MAX_IMAGE_PIXELS" in reason for reason in reasons.values())
    # The setting moves the limit.
    core.settings.max_image_pixels = 50_000_000
    r = shop.post("/api/v1/projects/shop/samples", data={"label": "mug"}, files=[("files", ("bomb.png", bomb))])
    assert r.status_code == 201, r.text


def test_csv_and_jsonl_with_too_many_rows(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"review {i},pos\n" for i in range(5)))
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text("".join(f'{{"text": "review {i}", "label": "pos"}}\n\n' for i in range(5)))
    for path in (csv, jsonl):
        assert len(read_text_records(path, max_rows=5)) == 5
        with pytest.raises(TooLarge) as err:
            read_text_records(path, max_rows=4)
        assert "more than 4 rows; the limit is 4 (server setting DYNTRAIN_MAX_CSV_ROWS)" in err.value.message
    # The CLI applies the same setting before uploading anything (no server is needed to refuse).
    r = CliRunner().invoke(cli, ["import", str(csv), "--project", "p", "--url", "http://127.0.0.1:9"],
                           env={"DYNTRAIN_MAX_CSV_ROWS": "3"})
    assert r.exit_code == 1 and "DYNTRAIN_MAX_CSV_ROWS" in r.output


def test_model_file_over_the_limit(shop, core):
    core.settings.max_model_bytes = 1000
    r = shop.post("/api/v1/projects/shop/models", files={"file": ("m.onnx", b"\x08" * 1500)},
                  data={"labels": ["a", "b"]})
    assert "the model is more than 1000 bytes" in _too_large(r, "max_model_bytes", 1000)
