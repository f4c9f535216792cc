"""The Python client drives the whole loop against a live server: create a project, add images
(paths, bytes, PIL images, arrays), train and wait with progress, predict with typed answers and
explanations, read runs and models, promote and roll back, texts and table rows too; every
refusal is an exception carrying the server's message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dyntrain.client import ApiError, Client
from dyntrain.client_project import ModelVersion, Prediction, Run, TrainingFailed
from dyntrain.ops.demo import digit_images

QUICK = {"auto_train": False, "learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 5}


@pytest.mark.slow
def test_the_whole_loop_from_python(loop_server, tmp_path):
    client = Client(loop_server.url)
    with pytest.raises(ApiError) as missing:
        client.project("shelf")
    assert missing.value.status == 404 and "shelf" in missing.value.message
    shelf = client.project("shelf", create=True, settings=QUICK)
    assert client.project("shelf").name == "shelf" and any(p["name"] == "shelf" for p in client.projects())

    images = digit_images(per_class=8)
    paths = []
    for i, (label, data) in enumerate(images[:6]):  # files on disk
        paths.append(tmp_path / f"{label}-{i}.png")
        paths[-1].write_bytes(data)
    shelf.add(paths, labels=[lab for lab, _ in images[:6]])
    pil = [(lab, Image.open(io.BytesIO(d))) for lab, d in images[6:12]]  # PIL images
    shelf.add([im for _, im in pil], labels=[lab for lab, _ in pil])
    arrays = [(lab, np.asarray(Image.open(io.BytesIO(d)).convert("RGB"))) for lab, d in images[12:]]
    change = shelf.add([a for _, a in arrays], labels=[lab for lab, _ in arrays])  # NumPy arrays
    assert change["version"]["number"] == 3 and change["version"]["size"] == len(images)
    with pytest.raises(ValueError, match="one label per example"):
        shelf.add(paths[:2], labels=["digit-0"])
    with pytest.raises(ApiError) as bad:
        shelf.add([b"not an image"], labels="digit-0")
    assert bad.value.status == 422 and bad.value.message

    steps = []
    run = shelf.train(wait=True, progress=steps.append)
    assert isinstance(run, Run) and run.status == "succeeded" and run.model_version == 1 and run.promoted
    assert steps and steps[-1]["percent"] >= steps[0]["percent"] and {s["stage"] for s in steps} & {"features", "selection"}
    assert run.learner in QUICK["learners"] and 0 <= run.macro_f1 <= 1

    test = digit_images(per_class=1, offset=40)
    preds = shelf.predict([d for _, d in test] + [b"nope"])
    assert all(isinstance(p, Prediction) for p in preds)
    assert [p.label for p in preds[:3]] == [lab for lab, _ in test] and preds[3].error
    assert preds[0].model_version == 1 and abs(sum(preds[0].scores.values()) - 1) < 1e-3
    one = shelf.predict(Image.open(io.BytesIO(test[0][1])), explain="auto")[0]
    assert one.explanation["status"] == "ready" and len(one.explanation["grid"]) == 7
    shelf.feedback(one, test[0][0], add_to_training=True)

    (model,) = shelf.models()
    assert isinstance(model, ModelVersion) and model.in_service and model.card["labels"]
    assert shelf.model_file(1)[:4] != b"" and [r.id for r in shelf.runs()] == [run.id]
    with pytest.raises(ApiError) as nothing:
        shelf.rollback()
    assert nothing.value.status == 422 and "roll back" in nothing.value.message
    second = shelf.train(wait=True)  # the fed-back image is a new dataset version
    assert second.model_version == 2
    shelf.promote(1)
    assert [m.version for m in shelf.models() if m.in_service] == [1]
    shelf.promote(2)
    assert shelf.rollback()["production"] == 1

    # a failing run is an exception with the server's reason
    lonely = client.project("lonely", create=True, settings=QUICK)
    lonely.add([d for _, d in images[:2]], labels="digit-0")
    with pytest.raises((TrainingFailed, ApiError)) as failed:
        lonely.train(wait=True)
    assert "class" in str(failed.value)

    # table rows from a DataFrame, predicted back
    import pandas as pd  # in the dev stack (mlxtend, scattertext need it)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, 40), "area": rng.uniform(30, 150, 40).round(1)})
    frame["price"] = frame["rooms"] * 20_000 + frame["area"] * 3_000
    houses = client.project("houses", create=True, task="tabular-regression", settings={"auto_train": False})
    houses.add(rows=frame, target="price")
    houses.train(wait=True)
    (p,) = houses.predict(rows=[{"rooms": 3, "area": 80.0}])
    assert p.value is not None and 150_000 < p.value < 450_000
    client.close()
