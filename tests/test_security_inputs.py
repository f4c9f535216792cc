"""Hostile or malformed input gets a clear 4xx and leaves nothing behind: uploaded models
(size, external data anywhere, no server paths in errors), lone surrogates, NaN/Infinity,
non-string JSONL records, CSV rows vs. file counts, long texts, zip bombs in the CLI import."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import onnx
import onnx.helper as oh
import pytest
from typer.testing import CliRunner

from dyntrain.codecs.archive import read_text_records
from dyntrain.cli import app as cli
from dyntrain.kernel.errors import Invalid, TooLarge
from dyntrain.kernel.projects import create_project
from dyntrain.registry.external import upload_model
from tests.conftest import png_bytes


def _project(client, name, task="image-classification"):
    r = client.post("/api/v1/projects", json={"name": name, "task": task, "settings": {"auto_train": False}})
    assert r.status_code == 201, r.text


# --- uploaded ONNX models -------------------------------------------------------------------------

def _image_model(nodes, initializers=(), sparse=(), functions=()) -> onnx.ModelProto:
    """A graph with our image contract (uint8 [N, 224, 224, 3] in, [N, 2] out)."""
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("image", onnx.TensorProto.UINT8, ["n", 224, 224, 3])],
                          [oh.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["n", 2])],
                          initializer=list(initializers), sparse_initializer=list(sparse))
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], functions=list(functions))


def _external(name="w") -> onnx.TensorProto:
    """A tensor whose data is "in" a server file (what a hostile model would ask ONNX Runtime to read)."""
    tensor = oh.make_tensor(name, onnx.TensorProto.FLOAT, [2], [0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "8")):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _identity_graph(extra_init=()):
    return oh.make_graph([oh.make_node("Identity", ["x"], ["y"])], "body", [],
                         [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
                         initializer=[oh.make_tensor("x", onnx.TensorProto.FLOAT, [2], [1.0, 1.0]), *extra_init])


def _nested_external_models() -> dict[str, onnx.ModelProto]:
    then_branch = _identity_graph([_external("hidden")])
    else_branch = _identity_graph()
    cond = oh.make_tensor("c", onnx.TensorProto.BOOL, [], [True])
    if_node = oh.make_node("If", ["c"], ["branch"], then_branch=then_branch, else_branch=else_branch)
    constant = oh.make_node("Constant", [], ["k"], value=_external("k"))
    sparse = onnx.SparseTensorProto()
    sparse.values.CopyFrom(_external("sv"))
    sparse.indices.CopyFrom(oh.make_tensor("si", onnx.TensorProto.INT64, [2], [0, 1]))
    sparse.dims.extend([4])
    inner_if = oh.make_node("If", ["c"], ["deep"], then_branch=oh.make_graph(
        [oh.make_node("Constant", [], ["z"], value=_external("z"))], "inner", [],
        [oh.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2])]), else_branch=_identity_graph())
    outer = oh.make_node("If", ["c"], ["outer"], then_branch=oh.make_graph(
        [inner_if], "outer", [], [oh.make_tensor_value_info("deep", onnx.TensorProto.FLOAT, [2])]),
        else_branch=_identity_graph())
    function = oh.make_function("my.fn", "F", [], ["f"], [oh.make_node("Constant", [], ["f"], value=_external("f"))],
                                [oh.make_opsetid("", 17)])
    return {
        "If subgraph initializer": _image_model([if_node], [cond]),
        "Constant attribute": _image_model([constant]),
        "sparse initializer": _image_model([], sparse=[sparse]),
        "subgraph of a subgraph": _image_model([outer], [cond]),
        "function body": _image_model([], functions=[function]),
    }


def _upload(client, data: bytes, project="shop"):
    return client.post(f"/api/v1/projects/{project}/models", files={"file": ("m.onnx", data)},
                       data={"labels": ["a", "b"]})


@pytest.mark.parametrize("where", list(_nested_external_models()))
def test_external_data_anywhere_in_an_uploaded_model_is_refused(client, core, where):
    _project(client, "shop")
    r = _upload(client, _nested_external_models()[where].SerializeToString())
    assert r.status_code == 422, r.text
    assert "external data" in r.json()["error"]["message"]
    assert str(core.settings.data_dir) not in r.text and "/tmp" not in r.text
    assert client.get("/api/v1/projects/shop/models").json() == []


def test_model_errors_do_not_show_server_paths(client, core):
    _project(client, "shop")
    broken = _image_model([oh.make_node("NoSuchOp", ["image"], ["probabilities"])])  # parses; ONNX Runtime refuses
    r = _upload(client, broken.SerializeToString())
    assert r.status_code == 422 and "NoSuchOp" in r.json()["error"]["message"], r.text
    assert str(core.settings.data_dir) not in r.text and "/tmp" not in r.text  # ONNX Runtime names the file
    for body in (b"garbage", b"\x80\x04pickle", b"PK\x03\x04zip"):
        r = _upload(client, body)
        assert r.status_code == 422 and str(core.settings.data_dir) not in r.text


class _Endless(io.RawIOBase):
    """An upload that never ends; counts what was read from it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = b"\x08" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def test_model_upload_is_copied_in_chunks_and_refused_at_the_limit(core):
    create_project(core, "shop")
    core.settings.max_model_bytes = 3 * 1024 * 1024
    source = _Endless()
    with pytest.raises(TooLarge) as err:
        upload_model(core, "shop", source, ["a", "b"])
    assert "DYNTRAIN_MAX_MODEL_BYTES" in err.value.message
    assert source.read_bytes <= core.settings.max_model_bytes + 1024 * 1024  # stopped at the first chunk past it
    assert not [p for p in core.settings.data_dir.iterdir() if p.name.startswith("tmp")]  # temp file removed


# --- lone surrogates, NaN / Infinity ----------------------------------------------------------------

def _raw(client, path, body: str):
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


def test_lone_surrogates_are_a_422_naming_the_field(client):
    _project(client, "reviews", "text-classification")
    _project(client, "houses", "tabular-classification")
    cases = {
        "/api/v1/projects/reviews/samples/texts": ('{"items": [{"text": "ok", "label": "pos"}, '
                                                   '{"text": "bad \\ud800 text", "label": "neg"}]}', "items.1.text"),
        "/api/v1/projects/reviews/predict/texts": ('{"texts": ["fine", "\\udfff"]}', "texts.1"),
        "/api/v1/projects/houses/samples/rows": ('{"rows": [{"city": "Os\\ud800lo", "y": "a"}], "target": "y"}',
                                                 "rows.0"),
        "/api/v1/projects/houses/predict/rows": ('{"rows": [{"city": "\\ud800"}]}', "rows.0"),
        "/api/v1/projects": ('{"name": "p", "description": "\\ud800"}', "description"),
    }
    for path, (body, field) in cases.items():
        r = _raw(client, path, body)
        assert r.status_code == 422, (path, r.text)
        error = r.json()["error"]
        assert any(d["field"].endswith(field) and "surrogate" in d["reason"] for d in error["details"]), error
    assert "column 'city'" in _raw(client, "/api/v1/projects/houses/predict/rows", cases[
        "/api/v1/projects/houses/predict/rows"][0]).text
    assert client.get("/api/v1/projects/reviews/samples").json()["total"] == 0


def test_nan_and_infinity_in_rows_are_refused_naming_row_and_cell(client):
    _project(client, "houses", "tabular-regression")
    r = _raw(client, "/api/v1/projects/houses/samples/rows",
             '{"rows": [{"rooms": 3, "price": 1}, {"rooms": NaN, "price": 2}, {"rooms": 1, "area": -Infinity, '
             '"price": 3}], "target": "price"}')
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert [d["row"] for d in details] == [2, 3]
    assert "column 'rooms'" in details[0]["reason"] and "nan" in details[0]["reason"]
    assert "column 'area'" in details[1]["reason"] and "inf" in details[1]["reason"]
    r = _raw(client, "/api/v1/projects/houses/samples/rows",
             '{"rows": [{"rooms": 3, "price": Infinity}], "target": "price"}')
    assert r.status_code == 422 and "finite" in r.text
    # Prediction: refused before any model is needed, naming the row and the cell.
    r = _raw(client, "/api/v1/projects/houses/predict/rows", '{"rows": [{"rooms": 2}, {"rooms": Infinity}]}')
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [{"row": 2, "reason": r.json()["error"]["details"][0]["reason"]}]
    assert "column 'rooms'" in r.json()["error"]["message"]
    assert client.get("/api/v1/projects/houses/samples").json()["total"] == 0


# --- JSONL / CSV records ---------------------------------------------------------------------------

@pytest.mark.parametrize("record, column, shown", [
    ({"text": None, "label": "pos"}, "text", "null"),
    ({"text": "fine", "label": ["x"]}, "label", "list"),
    ({"text": {"a": 1}, "label": "pos"}, "text", "dict"),
    ({"text": "fine", "label": None}, "label", "null"),
    ({"text": 3.5, "label": "pos"}, "text", "float"),
])
def test_jsonl_records_need_string_text_and_label(tmp_path, record, column, shown):
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps({"text": "good", "label": "pos"}) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(Invalid) as err:
        read_text_records(path)
    assert f"reviews.jsonl record 2: '{column}' is" in err.value.message and shown in err.value.message
    path.write_text(json.dumps({"text": "good", "label": 1}) + "\n")  # an integer class stays usable
    assert read_text_records(path) == [("1", "good")]


def test_short_csv_row_is_not_stored_as_none(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\ngood film,pos\nno label\n")
    with pytest.raises(Invalid, match="record 2: 'label' is null"):
        read_text_records(path)


def test_csv_upload_counts_rows_not_files(client, core):
    _project(client, "houses", "tabular-classification")
    core.settings.max_files_per_request = 5  # would have refused 20 rows as "20 files in one request"
    csv = "rooms,city,label\n" + "".join(f"{i},Oslo,{'big' if i % 2 else 'small'}\n" for i in range(20))
    r = client.post("/api/v1/projects/houses/samples/csv", files={"file": ("h.csv", csv)}, data={"target": "label"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/projects/houses/samples").json()["total"] == 20
    core.settings.max_csv_rows = 10
    r = client.post("/api/v1/projects/houses/samples/csv", files={"file": ("h.csv", csv)}, data={"target": "label"})
    assert r.status_code == 413 and "DYNTRAIN_MAX_CSV_ROWS" in r.json()["error"]["message"], r.text
    rows = [{"rooms": i, "label": "big"} for i in range(11)]
    r = client.post("/api/v1/projects/houses/samples/rows", json={"rows": rows, "target": "label"})
    assert r.status_code == 413 and "DYNTRAIN_MAX_CSV_ROWS" in r.json()["error"]["message"], r.text
    assert client.get("/api/v1/projects/houses/samples").json()["total"] == 20


# --- long texts ----------------------------------------------------------------------------------

def test_long_texts_up_to_the_setting_are_stored(client, core):
    _project(client, "speeches", "text-classification")
    speech = ("Friends, colleagues, fellow citizens. " * 6000)[:200_000]
    r = client.post("/api/v1/projects/speeches/samples/texts", json={"items": [{"text": speech, "label": "speech"}]})
    assert r.status_code == 201, r.text
    sample = r.json()["samples"][0]
    assert client.get(f"/api/v1/projects/speeches/samples/{sample['id']}/image").text == speech
    r = client.post("/api/v1/projects/speeches/samples/texts",
                    json={"items": [{"text": speech + "!", "label": "speech"}]})
    assert r.status_code in (413, 422), r.text
    assert "200001 characters" in r.text and "DYNTRAIN_MAX_TEXT_CHARS" in r.text
    core.settings.max_text_chars = 300_000  # the setting moves the limit
    r = client.post("/api/v1/projects/speeches/samples/texts",
                    json={"items": [{"text": speech + "!", "label": "speech"}]})
    assert r.status_code == 201, r.text


# --- CLI import of a zip bomb ------------------------------------------------------------------------

def _bomb_zip(path, inflated_mb: int, good: int = 3, lie_to: int | None = None):
    """``good`` real images, then a member of ``inflated_mb`` MiB of zeros (a few kB compressed);
    with ``lie_to`` its headers claim that many bytes instead."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(good):
            zf.writestr(f"mug/{i}.png", png_bytes(i))
        with zf.open("mug/zz-bomb.png", "w") as member:
            for _ in range(inflated_mb):
                member.write(bytes(1024 * 1024))
    if lie_to is not None:
        data = bytearray(path.read_bytes())
        local = data.rindex(b"PK\x03\x04")  # the bomb is the last member
        central = data.rindex(b"PK\x01\x02")
        data[local + 22:local + 26] = lie_to.to_bytes(4, "little")
        data[central + 24:central + 28] = lie_to.to_bytes(4, "little")
        path.write_bytes(bytes(data))
    assert path.stat().st_size < 200_000


def _import(server, archive, project):
    tracemalloc.start()
    try:
        r = CliRunner().invoke(cli, ["import", str(archive), "--project", project, "--url", server.url],
                               env={"DYNTRAIN_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024)})
        return r, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_cli_import_refuses_a_zip_bomb_without_inflating_it(live_server, core, tmp_path, monkeypatch):
    import httpx

    monkeypatch.setattr("dyntrain.cli.UPLOAD_CHUNK", 2)  # the first chunk is sent before the bomb is reached
    bomb = tmp_path / "bomb.zip"
    _bomb_zip(bomb, inflated_mb=96)
    r, peak = _import(live_server, bomb, "bombed")
    assert r.exit_code == 1, r.output
    assert "zz-bomb.png is 100663296 bytes" in r.output and "DYNTRAIN_MAX_UPLOAD_BYTES" in r.output
    assert peak < 32 * 1024 * 1024, peak  # never inflated (96 MiB)
    projects = httpx.get(f"{live_server.url}/api/v1/projects").json()
    assert not any(p["name"] == "bombed" for p in projects)  # created for the first chunk, deleted again

    liar = tmp_path / "liar.zip"  # headers claim 1000 bytes; the data inflates to 96 MiB
    _bomb_zip(liar, inflated_mb=96, lie_to=1000)
    r, peak = _import(live_server, liar, "lied")
    assert r.exit_code == 1 and "zz-bomb.png" in r.output, r.output
    assert peak < 32 * 1024 * 1024, peak
    assert not any(p["name"] == "lied" for p in httpx.get(f"{live_server.url}/api/v1/projects").json())


def test_a_lone_surrogate_a_schema_missed_is_still_a_422(core):
    # The fallback for a str field without the schemas' check (pydantic lets a plain str through).
    from fastapi import Body
    from fastapi.testclient import TestClient

    from dyntrain.api import create_app

    def echo(body: dict = Body(...)):
        return {"bytes": len(body["text"].encode("utf-8"))}

    app = create_app(core=core)
    app.add_api_route("/api/v1/echo", echo, methods=["POST"])
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000), raise_server_exceptions=False) as c:
        assert _raw(c, "/api/v1/echo", '{"text": "fine"}').json() == {"bytes": 4}
        r = _raw(c, "/api/v1/echo", '{"text": "\\ud800"}')
    assert r.status_code == 422 and "surrogate" in r.json()["error"]["message"], r.text


def test_model_upload_is_refused_while_it_streams_in(live_server, core):
    import httpx

    create_project(core, "shop")
    core.settings.max_model_bytes = 2 * 1024 * 1024
    sent = 0

    def body():  # a 64 MiB multipart upload, produced as it is sent
        nonlocal sent
        yield (b'--b\r\nContent-Disposition: form-data; name="labels"\r\n\r\na\r\n'
               b'--b\r\nContent-Disposition: form-data; name="labels"\r\n\r\nb\r\n'
               b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
               b'Content-Type: application/octet-stream\r\n\r\n')
        for _ in range(64):
            sent += 1024 * 1024
            yield b"\x08" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    try:
        r = httpx.post(f"{live_server.url}/api/v1/projects/shop/models", content=body(), timeout=60,
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "DYNTRAIN_MAX_MODEL_BYTES" in r.json()["error"]["message"], r.text
    except httpx.TransportError:
        pass  # the server answered and closed while the client was still sending
    assert sent < 32 * 1024 * 1024, sent  # refused after a few MiB, not once all 64 MiB were received
