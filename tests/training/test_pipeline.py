"""A training run from version items to an exported, verified model — pure of the database."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from dyntrain.codecs import imaging
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.entities import VersionItem
from dyntrain.kernel.errors import Cancelled, Invalid
from dyntrain.learners.features import FeatureExtractor
from dyntrain.storage import FileBlobStore
from dyntrain.training.pipeline import TrainingSpec, train
from dyntrain.training.split import is_holdout

CHEAP = ({"learner": "image.pixel_logreg", "params": {"C": 0.1}},
         {"learner": "image.pixel_logreg", "params": {"C": 1.0}},
         {"learner": "image.linear_probe", "params": {"C": 10.0}})


def _dataset(tmp_path, digits=(0, 1, 7), per_class=12, offset=0):
    blobs = FileBlobStore(tmp_path / "blobs")
    items = [VersionItem(i + 1, blobs.put(data), label)
             for i, (label, data) in enumerate(digit_images(digits, per_class=per_class, offset=offset))]
    return blobs, items


def _train(tmp_path, items, blobs, spec, progress=None, **kw):
    return train(items, spec, load_image=blobs.get, extractor=FeatureExtractor(tmp_path / "cache"),
                 work_dir=tmp_path / "work", progress=progress, **kw)


def test_run_records_everything_and_onnx_reproduces_probabilities(tmp_path):
    blobs, items = _dataset(tmp_path)
    stages = []
    out = _train(tmp_path, items, blobs, TrainingSpec(dataset_version=1, candidates=CHEAP),
                 progress=lambda stage, f, cand: stages.append((stage, f, cand)))
    r = out.result
    assert r["evaluation"]["mode"] == "cv" and "cross-validation" in r["evaluation"]["reason"]
    # the three candidates, then their soft vote (scored from their out-of-fold probabilities)
    assert len(r["selection"]["scores"]) == 4 and r["selection"]["ensemble_index"] == 3
    assert all(s["macro_f1_mean"] is not None and s["seconds"] > 0 for s in r["selection"]["scores"])
    m = r["metrics"]
    assert set(m["per_class"]) == {"digit-0", "digit-1", "digit-7"}
    # selection chose among 3: the shown score is nested CV, each sample predicted once
    assert m["estimate"]["method"] == "nested_cv" and m["repeats"] == 1
    assert np.array(m["confusion_matrix"]).sum() == m["evaluated_on"] == len(items)
    lo, hi = m["interval"]["accuracy"]
    assert lo <= m["accuracy"] <= hi and 0 <= lo < hi <= 1
    assert len(m["predictions"]) == len(items)
    assert m["accuracy"] > 0.8 and r["baseline"]["accuracy"] < 0.5
    assert {"features", "selection", "evaluation", "fit", "export", "total"} <= set(r["timings"])
    assert r["code"]["dyntrain"] and r["code"]["onnxruntime"]
    assert [s for s, _, _ in stages][0] == "features" and stages[-1][0] == "export"
    assert any(c for _, _, c in stages if c)  # the candidate being tried is reported
    # the ONNX file on raw images == the trained model's probabilities on features
    session = ort.InferenceSession(str(out.onnx_path))
    images = np.stack([imaging.model_input(imaging.decode_image(blobs.get(i.content_hash))) for i in items[:6]])
    onnx_p = session.run(None, {"image": images})[0]
    assert onnx_p.shape == (6, 3) and np.allclose(onnx_p.sum(1), 1, atol=1e-5)
    assert out.card["labels"] == ["digit-0", "digit-1", "digit-7"]
    assert out.card["input"]["shape"] == [None, 224, 224, 3] and out.card["preprocessing"] == imaging.PREPROCESSING


def test_holdout_is_never_trained_on(tmp_path):
    blobs, items = _dataset(tmp_path, digits=(0, 1), per_class=60)
    spec = TrainingSpec(dataset_version=1, candidates=CHEAP[:2], min_holdout_per_class=5)
    out = _train(tmp_path, items, blobs, spec)
    ev = out.result["evaluation"]
    holdout = {i.sample_id for i in items if is_holdout(i.content_hash)}
    assert ev["mode"] == "holdout" and ev["holdout_size"] == len(holdout) and ev["train_size"] == len(items) - len(holdout)
    assert {p["sample_id"] for p in out.result["metrics"]["predictions"]} == holdout


def test_replaying_a_recorded_spec_in_a_fresh_process_reproduces_metrics(tmp_path):
    blobs, items = _dataset(tmp_path)
    out = _train(tmp_path, items, blobs, TrainingSpec(dataset_version=1, time_budget_s=60))
    replay = out.result["replay_spec"]
    assert len(replay["candidates"]) >= 3
    job = {"spec": replay, "items": [[i.sample_id, i.content_hash, i.label] for i in items],
           "blobs": str(tmp_path / "blobs"), "cache": str(tmp_path / "fresh-cache"), "work": str(tmp_path / "w2")}
    script = (
        "import json,sys\n"
        "from pathlib import Path\n"
        "from dyntrain.kernel.entities import VersionItem\n"
        "from dyntrain.learners.features import FeatureExtractor\n"
        "from dyntrain.storage import FileBlobStore\n"
        "from dyntrain.training.pipeline import TrainingSpec, train\n"
        "job = json.load(sys.stdin)\n"
        "blobs = FileBlobStore(Path(job['blobs']))\n"
        "out = train([VersionItem(*i) for i in job['items']], TrainingSpec.from_dict(job['spec']),\n"
        "            load_image=blobs.get, extractor=FeatureExtractor(job['cache']), work_dir=Path(job['work']))\n"
        "print(json.dumps({'chosen': out.result['chosen'], 'metrics': out.result['metrics']}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(job), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    assert again["chosen"] == out.result["chosen"]
    for key in ("accuracy", "macro_f1", "confusion_matrix", "per_class"):
        assert again["metrics"][key] == out.result["metrics"][key]


def test_refusals(tmp_path):
    blobs, items = _dataset(tmp_path, digits=(0, 1), per_class=3)
    spec = TrainingSpec(dataset_version=1, candidates=CHEAP)
    with pytest.raises(Invalid, match="at least 2 classes"):
        _train(tmp_path, [i for i in items if i.label == "digit-0"], blobs, spec)
    with pytest.raises(Invalid, match="at least 2 examples"):
        _train(tmp_path, items[:4], blobs, spec)  # three of digit-0, one of digit-1


def test_cancellation_between_steps(tmp_path):
    blobs, items = _dataset(tmp_path)
    seen = []

    def progress(stage, fraction, candidate):
        seen.append(stage)
        if stage == "selection":
            raise Cancelled("superseded")

    with pytest.raises(Cancelled):
        _train(tmp_path, items, blobs, TrainingSpec(dataset_version=1, candidates=CHEAP), progress=progress)
    assert "fit" not in seen


def test_fair_comparison_refits_production_config_on_the_same_data(tmp_path):
    from dyntrain.learners.selection import Candidate

    blobs, items = _dataset(tmp_path)
    out = _train(tmp_path, items, blobs, TrainingSpec(dataset_version=1, candidates=CHEAP[2:]),
                 compare_with=Candidate("image.pixel_logreg", {"C": 0.1}))
    comparison = out.result["comparison"]
    assert comparison["candidate"] == {"learner": "image.pixel_logreg", "params": {"C": 0.1}}
    # same folds: the same number of out-of-fold predictions as the new model's evaluation
    assert np.array(comparison["metrics"]["confusion_matrix"]).sum() == np.array(out.result["metrics"]["confusion_matrix"]).sum()
