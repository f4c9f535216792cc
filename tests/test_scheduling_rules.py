"""Scheduling rules users rely on, on SQLite and PostgreSQL: what a quick retrain may reuse, what a
data change may cancel, how rollback walks back, deleting a training project, classes still waiting
for examples. Each is checked on the job, run and alias rows."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import delete, select

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.kernel.entities import VersionItem
from dyntrain.kernel.errors import Cancelled, Invalid
from dyntrain.learners.features import FeatureExtractor
from dyntrain.kernel.projects import create_project, delete_project, project_row, update_project
from dyntrain.kernel.project_settings import ProjectSettings
from dyntrain.registry.models import alias_history, promote, register_model, rollback
from dyntrain.scheduler import queue
from dyntrain.storage.rows import JobRow, ModelVersionRow, ProjectRow, RunRow
from dyntrain.scheduler import jobs
from dyntrain.training import records
from dyntrain.training.pipeline import TrainingSpec, train
from tests.conftest import png_bytes

CONFIG = {"learner": "image.linear_probe", "params": {"C": 10.0}}


def _seed(core, project, labels=("a", "a", "b", "b"), base=100):
    return add_samples(core, project, [Upload(f"{base + i}.png", png_bytes(base + i)) for i in range(len(labels))],
                       list(labels))[1]


def _pending(core, project):
    return [j for j in queue.list_jobs(core, project) if j.status in ("delayed", "queued")]


# -- 1. a quick retrain refits the configuration in service, never a kept-back or disallowed one ----------


def _model(core, tmp_path, project, config, run_id):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"a model file")
    with core.db.read() as s:
        pid = project_row(s, project).id
    card = {"labels": ["a", "b"], **config, "recipe": {"name": "none"}}
    return register_model(core, pid, onnx, card, run_id=run_id).version


def _full_run(core, project, chosen, promoted):
    """A finished full selection of version 1 (two classes, 4 samples) and its gate decision."""
    with core.db.write() as s:
        row = RunRow(project_id=project_row(s, project).id, job_id=None, dataset_version=1, status="succeeded",
                     spec={"mode": "full"},
                     result={"labels": ["a", "b"], "counts": {"a": 2, "b": 2}, "chosen": chosen,
                             "gate": {"promoted": promoted}})
        s.add(row)
        s.flush()
        return row.id


def _choose(core, project):
    job = _pending(core, project)[0]
    with core.db.read() as s:
        row = project_row(s, project)
    return jobs.choose_spec(core, row, job, 5, {"a", "b"}, ProjectSettings(**row.settings))


@pytest.fixture
def served(core, tmp_path):
    """Project "p": run 1 (full) chose CONFIG and its model v1 serves; a data change is pending."""
    create_project(core, "p", settings={"train_delay_s": 60})
    _seed(core, "p")
    run = _full_run(core, "p", CONFIG, promoted=True)
    promote(core, "p", _model(core, tmp_path, "p", CONFIG, run))
    add_samples(core, "p", [Upload("x.png", png_bytes(1))], ["a"])
    return run


def test_quick_retrain_refits_the_model_in_service(core, served):
    spec, why = _choose(core, "p")
    assert spec.mode == "reuse" and spec.candidates == (CONFIG,) and spec.recipe == {"name": "none"}
    assert "model version 1 in service" in why


def test_kept_back_selection_is_not_reused(core, served, tmp_path):
    other = {"learner": "image.pixel_logreg", "params": {"C": 1.0}}
    run = _full_run(core, "p", other, promoted=False)  # "train now" chose it; the gate kept its model back
    _model(core, tmp_path, "p", other, run)
    spec, why = _choose(core, "p")
    assert spec.mode == "full" and spec.candidates is None and "kept back" in why


def test_disallowed_learner_is_not_reused(core, served):
    update_project(core, "p", settings={"learners": ["image.pixel_logreg"]})
    spec, why = _choose(core, "p")
    assert spec.mode == "full" and "no longer an allowed learner" in why


def test_a_model_in_service_from_elsewhere_gets_a_full_selection(core, served, tmp_path):
    promote(core, "p", _model(core, tmp_path, "p", {"learner": "image.pixel_logreg", "params": {}}, None))
    spec, why = _choose(core, "p")
    assert spec.mode == "full" and "not chosen by the last selection" in why


def test_after_a_kept_back_selection_real_runs_select_again(core):
    """Real runs (table rows, fast): "train now" on corrupted labels is kept back; the next
    automatic run must not refit that configuration but select again; production stays v1."""
    from dyntrain.datasets.changes import add_rows, update_class
    from dyntrain.registry.models import list_models
    from tests.test_tabular_loop import fruit

    def train_next():
        run_job = queue.claim_next(core)
        jobs.run_job(core, run_job)
        return records.run_detail(core, records.list_runs(core, "fruit", 1)[0]["id"])

    create_project(core, "fruit", task="tabular-classification",
                   settings={"train_delay_s": 0, "train_max_delay_s": 60, "time_budget_s": 5})
    add_rows(core, "fruit", fruit(60), "fruit")
    first = train_next()
    assert first["spec"]["mode"] == "full" and first["result"]["gate"]["promoted"]
    for old, new in (("apple", "swap"), ("banana", "apple"), ("swap", "banana")):
        update_class(core, "fruit", old, new_label=new)
    add_rows(core, "fruit", fruit(12, seed=7), "fruit")
    queue.request_training(core, "fruit")
    manual = train_next()
    assert manual["spec"]["mode"] == "full" and not manual["result"]["gate"]["promoted"]
    add_rows(core, "fruit", fruit(3, seed=9), "fruit")
    auto = train_next()
    assert auto["job_id"] != manual["job_id"]
    assert auto["spec"]["mode"] == "full" and "kept back" in auto["spec"]["why"]
    assert [m.version for m in list_models(core, "fruit") if "production" in m.aliases] in ([1], [3])


# -- 2. a data change never cancels "train now" --------------------------------------------------------


def test_data_change_does_not_cancel_train_now_and_queues_a_follow_up(core):
    create_project(core, "p", settings={"train_delay_s": 0, "train_max_delay_s": 30, "auto_train": False})
    _seed(core, "p")
    update_project(core, "p", settings={"auto_train": True})
    queue.request_training(core, "p")
    manual = queue.claim_next(core)
    assert manual.trigger == "manual"
    version = _seed(core, "p", labels=("a", "b"), base=200).number
    assert queue.renew_lease(core, manual.id) is False
    assert not queue.get_job(core, "p", manual.id).cancel_requested
    follow_up = _pending(core, "p")
    assert [(j.trigger, j.dataset_version) for j in follow_up] == [("auto", version)]
    assert queue.claim_next(core) is None  # it waits for the manual run
    queue.finish_job(core, manual.id, "succeeded")
    assert queue.claim_next(core).id == follow_up[0].id


def test_with_auto_train_off_a_data_change_cancels_nothing(core):
    create_project(core, "p", settings={"train_delay_s": 0, "train_max_delay_s": 30})
    _seed(core, "p")
    auto = queue.claim_next(core)  # an automatic run, started before auto_train was switched off
    update_project(core, "p", settings={"auto_train": False})
    _seed(core, "p", labels=("a", "b"), base=200)
    assert queue.renew_lease(core, auto.id) is False and _pending(core, "p") == []
    queue.finish_job(core, auto.id, "succeeded")
    queue.request_training(core, "p")
    manual = queue.claim_next(core)
    _seed(core, "p", labels=("a", "b"), base=300)
    assert queue.renew_lease(core, manual.id) is False and _pending(core, "p") == []


def test_newer_data_still_supersedes_a_running_automatic_job(core):
    create_project(core, "p", settings={"train_delay_s": 0, "train_max_delay_s": 30})
    _seed(core, "p")
    auto = queue.claim_next(core)
    _seed(core, "p", labels=("a", "b"), base=200)
    assert queue.renew_lease(core, auto.id) is True


# -- 3. rollback walks back through the promotions -----------------------------------------------------


def test_rollback_walks_back_v3_v2_v1_then_refuses(core, client, tmp_path):
    from dyntrain.web.views import can_roll_back

    create_project(core, "p", settings={"auto_train": False})
    for _ in range(3):
        promote(core, "p", _model(core, tmp_path, "p", CONFIG, None))
    assert can_roll_back(core, "p")
    assert rollback(core, "p") == 2
    assert rollback(core, "p") == 1
    assert not can_roll_back(core, "p")  # the run page offers no button that would fail
    r = client.post("/api/v1/projects/p/rollback")
    assert r.status_code == 422 and "nothing to roll back to" in r.json()["error"]["message"]
    assert [(h["version"], h["action"]) for h in alias_history(core, "p")] == [
        (1, "rollback"), (2, "rollback"), (3, "promote"), (2, "promote"), (1, "promote")]
    promote(core, "p", 3)  # forward again by hand: a rollback undoes that promotion
    assert rollback(core, "p") == 1


def test_rollback_skips_versions_deleted_by_housekeeping(core, tmp_path):
    create_project(core, "p", settings={"auto_train": False})
    for _ in range(3):
        promote(core, "p", _model(core, tmp_path, "p", CONFIG, None))
    with core.db.write() as s:
        s.execute(delete(ModelVersionRow).where(ModelVersionRow.version == 2))
    assert rollback(core, "p") == 1
    with pytest.raises(Invalid, match="nothing to roll back to"):
        rollback(core, "p")


def test_housekeeping_keeps_the_version_rollback_would_restore(core, tmp_path):
    from dyntrain.ops.housekeeping import needed_versions

    create_project(core, "p", settings={"auto_train": False})
    for _ in range(3):
        promote(core, "p", _model(core, tmp_path, "p", CONFIG, None))
    rollback(core, "p")
    with core.db.read() as s:
        assert needed_versions(s, project_row(s, "p").id) == {2, 1}


# -- 4. deleting a project while it trains --------------------------------------------------------------


def _ids(core):
    with core.db.read() as s:
        return {t.__tablename__: s.scalar(select(t.id).order_by(t.id.desc()).limit(1))
                for t in (ProjectRow, JobRow, RunRow, ModelVersionRow)}


def test_ids_of_a_deleted_project_are_never_reused(core, tmp_path):
    create_project(core, "old", settings={"train_delay_s": 0})
    _seed(core, "old")
    job = queue.claim_next(core)
    records.start_run(core, job.project_id, job.id, 1, {})
    _model(core, tmp_path, "old", CONFIG, None)
    before = _ids(core)
    delete_project(core, "old")
    create_project(core, "new", settings={"train_delay_s": 0})
    _seed(core, "new")
    new_job = queue.claim_next(core)
    records.start_run(core, new_job.project_id, new_job.id, 1, {})
    _model(core, tmp_path, "new", CONFIG, None)
    after = _ids(core)
    assert all(after[t] > before[t] for t in before), (before, after)
    # the old worker reaches nothing: its job reads as cancelled, its model has no project to go to
    assert queue.renew_lease(core, job.id) is True
    with pytest.raises(Cancelled, match="deleted"):
        register_model(core, job.project_id, tmp_path / "m.onnx", {}, run_id=None)


@pytest.mark.parametrize("stage", ["training", "registering"])
def test_deleting_a_project_while_it_trains_cancels_its_run_cleanly(core, monkeypatch, caplog, tmp_path, stage):
    create_project(core, "p", settings={"train_delay_s": 0})
    _seed(core, "p")
    job = queue.claim_next(core)
    real_train = train

    def train_then_lose_the_project(items, spec, *, progress, **kw):
        delete_project(core, "p")
        if stage == "training":
            progress("features", 0.5, None)  # the heartbeat finds the job gone: cancelled
        return real_train(items, TrainingSpec(**{**spec.to_dict(), "candidates": (
            {"learner": "image.pixel_logreg", "params": {"C": 1.0}},)}), progress=None, **kw)

    monkeypatch.setattr(jobs, "train", train_then_lose_the_project)
    with caplog.at_level(logging.WARNING):
        jobs.run_job(core, job)  # returns: no exception escapes the worker
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    with core.db.read() as s:
        assert s.get(JobRow, job.id) is None and s.scalars(select(RunRow)).all() == []
        assert s.scalars(select(ModelVersionRow)).all() == []
    assert not list((core.settings.model_dir).glob("p/*.onnx"))


# -- 5. a class with too few examples waits instead of stopping every retrain --------------------------


def test_a_new_class_with_one_example_waits_and_the_rest_retrains(core, client):
    create_project(core, "p", settings={"train_delay_s": 60})
    _seed(core, "p")
    version = add_samples(core, "p", [Upload("mug.png", png_bytes(7))], ["mug"])[1].number
    assert [j.dataset_version for j in _pending(core, "p")] == [version]  # still scheduled
    assert queue.request_training(core, "p").dataset_version == version
    classes = {c["label"]: c for c in client.get("/api/v1/projects/p/classes").json()}
    assert classes["mug"]["waiting"] == "'mug' needs 1 more example before the model can learn it"
    assert classes["a"]["waiting"] is None
    page = client.get("/projects/p").text
    assert "needs 1 more example before the model can learn it" in page.replace("&#39;", "'")
    # two classes must still be learnable
    create_project(core, "q", settings={"train_delay_s": 60})
    _seed(core, "q", labels=("a", "a", "b"))
    with pytest.raises(Invalid, match="'b' needs 1 more example"):
        queue.request_training(core, "q")


def test_a_run_leaves_waiting_classes_out_and_records_them(tmp_path):
    from dyntrain.ops.demo import digit_images
    from dyntrain.storage import FileBlobStore

    blobs = FileBlobStore(tmp_path / "blobs")
    images = digit_images((0, 1), per_class=6) + digit_images((7,), per_class=1)
    items = [VersionItem(i + 1, blobs.put(data), label) for i, (label, data) in enumerate(images)]
    out = train(items, TrainingSpec(dataset_version=1, candidates=(
        {"learner": "image.pixel_logreg", "params": {"C": 1.0}},)), load_image=blobs.get,
        extractor=FeatureExtractor(tmp_path / "cache"), work_dir=tmp_path / "work")
    assert out.result["waiting_classes"] == {"digit-7": 1}
    assert out.result["labels"] == out.card["labels"] == ["digit-0", "digit-1"]
    assert sum(out.result["counts"].values()) == 12
