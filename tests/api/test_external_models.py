"""External ONNX models: validated, evaluated on the project's data, registered, promotable;
executable formats and broken contracts refused with a clear message."""

from __future__ import annotations

import io
import pickle

import onnx
import pytest
import torch

from dyntrain.ops.demo import digit_images


class BrightnessModel(torch.nn.Module):
    """A real (if simple) classifier: dark images → class 0, bright → class 1."""

    def __init__(self, softmax: bool = True):
        super().__init__()
        self.softmax = softmax

    def forward(self, image):
        mean = image.float().mean(dim=(1, 2, 3)) / 255.0
        logits = torch.stack([(0.5 - mean) * 20, (mean - 0.5) * 20], dim=1)
        return torch.softmax(logits, dim=1) if self.softmax else logits


def _onnx(model, shape=(1, 224, 224, 3), dtype=torch.uint8, **kw) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(model, torch.zeros(*shape, dtype=dtype), buf, input_names=["pixels"], output_names=["out"],
                      dynamic_axes={"pixels": {0: "n"}, "out": {0: "n"}}, dynamo=False, opset_version=17, **kw)
    return buf.getvalue()


def _upload(client, data, labels=("dark", "bright"), filename="m.onnx"):
    return client.post("/api/v1/projects/shop/models", files={"file": (filename, data)},
                       data={"labels": list(labels)})


@pytest.fixture
def shop(client):
    client.post("/api/v1/projects", json={"name": "shop", "settings": {"auto_train": False}})
    images = digit_images(digits=(0, 1), per_class=6)
    client.post("/api/v1/projects/shop/samples", files=[("files", (f"{i}.png", d)) for i, (_, d) in enumerate(images)],
                data={"labels": ["dark" if lab == "digit-0" else "bright" for lab, _ in images]})
    return client


def test_external_model_is_evaluated_registered_and_promotable(shop):
    r = _upload(shop, _onnx(BrightnessModel()))
    assert r.status_code == 201, r.text
    card = r.json()["card"]
    assert card["source"] == "external" and card["labels"] == ["dark", "bright"]
    assert card["metrics"]["accuracy"] is not None and "samples" in card["evaluation"]
    assert r.json()["aliases"] == []
    assert shop.post("/api/v1/projects/shop/models/1/promote").json()["production"] == 1
    pred = shop.post("/api/v1/projects/shop/predict", files=[("files", ("x.png", digit_images(per_class=1)[0][1]))])
    assert pred.status_code == 200 and pred.json()["predictions"][0]["model_version"] == 1
    assert set(pred.json()["predictions"][0]["scores"]) == {"dark", "bright"}


def test_refusals(shop):
    r = _upload(shop, pickle.dumps({"weights": [1, 2, 3]}), filename="model.pkl")
    assert r.status_code == 422 and "pickle" in r.json()["error"]["message"]
    r = _upload(shop, b"PK\x03\x04 a torch checkpoint", filename="model.pt")
    assert r.status_code == 422 and "zip" in r.json()["error"]["message"]
    assert "not an ONNX model" in _upload(shop, b"garbage").json()["error"]["message"]
    r = _upload(shop, _onnx(BrightnessModel(softmax=False)))
    assert r.status_code == 422 and "probabilities" in r.json()["error"]["message"]
    r = _upload(shop, _onnx(BrightnessModel(), shape=(1, 3, 224, 224), dtype=torch.float32))
    assert r.status_code == 422 and "uint8" in r.json()["error"]["message"].lower() or "224, 224, 3" in r.text
    r = _upload(shop, _onnx(BrightnessModel()), labels=["only-one"])
    assert r.status_code == 422
    r = _upload(shop, _onnx(BrightnessModel()), labels=["a", "b", "c"])  # 3 labels, 2 outputs
    assert r.status_code == 422
    model = onnx.load_from_string(_onnx(BrightnessModel()))
    model.graph.node[0].domain = "evil.custom"
    model.opset_import.append(onnx.helper.make_opsetid("evil.custom", 1))
    r = _upload(shop, model.SerializeToString())
    assert r.status_code == 422 and "evil.custom" in r.json()["error"]["message"]
    assert shop.get("/api/v1/projects/shop/models").json() == []
