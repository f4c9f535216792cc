"""A sample's prediction history (GET …/samples/{id}/predictions) and the data grid's day filter,
over HTTP on SQLite and PostgreSQL (the UI side is tests/web/test_grid_history_augment_ui.py).

The predictions are recorded by the serving's own record writer (the rows a predict request
writes), so the query, its index and the time zone of stored dates are the real backends'."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import inspect, update

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.kernel.projects import create_project, get_project
from dyntrain.serving.records import writer_for
from dyntrain.storage.rows import SampleRow, utcnow
from tests.conftest import png_bytes


def _record(core, project_id: int, input_hash: str, label: str, confidence: float) -> int:
    [pid] = writer_for(core.db).write([{
        "project_id": project_id, "model_version": 1, "label": label, "confidence": confidence,
        "output": {"scores": {label: confidence}}, "input_hash": input_hash, "input_stored": False,
        "latency_ms": 1.0, "client": "test", "feedback_label": None, "feedback": None, "created_at": utcnow()}])
    return pid


def test_a_samples_predictions_and_the_day_filter(core, client):
    create_project(core, "shop", settings={"auto_train": False})
    pid = get_project(core, "shop").id
    samples, _ = add_samples(core, "shop", [Upload(f"p{i}.png", png_bytes(i)) for i in range(4)], ["cup"] * 4)
    seen, other = samples[0], samples[1]
    first = _record(core, pid, seen.content_hash, "cup", 0.6)
    second = _record(core, pid, seen.content_hash, "cup", 0.9)
    _record(core, pid, "0" * 64, "cup", 0.5)  # another input: not this sample's
    origin = _record(core, pid, "1" * 64, "cup", 0.7)
    added, _ = add_samples(core, "shop", [Upload("from-prediction.png", png_bytes(99))], ["cup"],
                           source=f"prediction:{origin}")
    api = "/api/v1/projects/shop/samples"
    body = client.get(f"{api}/{seen.id}/predictions").json()
    assert [p["id"] for p in body["items"]] == [second, first] and body["total"] == 2 and body["origin"] is None
    assert body["items"][0]["confidence"] == 0.9 and body["items"][0]["model_version"] == 1
    body = client.get(f"{api}/{added[0].id}/predictions").json()
    assert [p["id"] for p in body["items"]] == [origin] and body["items"][0]["origin"]
    assert not body["items"][0]["same_content"]
    assert client.get(f"{api}/{other.id}/predictions").json()["total"] == 0
    assert client.get(f"{api}/{seen.id}/predictions", params={"limit": 1}).json()["total"] == 2
    assert client.get(f"{api}/424242/predictions").status_code == 404
    # the index the history reads through exists on this backend (migration 0009)
    indexes = {ix["name"] for ix in inspect(core.db.engine).get_indexes("predictions")}
    assert "ix_predictions_project_input" in indexes

    # the day filter: two samples added 40 days ago, by UTC day whatever the database's zone
    old = datetime.now(timezone.utc) - timedelta(days=40)
    with core.db.write() as s:
        s.execute(update(SampleRow).where(SampleRow.id.in_([seen.id, other.id])).values(created_at=old))

    def shown(query: str) -> set[int]:
        html = client.get(f"/projects/shop/fragments/data?{query}").text
        return {int(x) for x in re.findall(r'<li class="thumb" data-sample="(\d+)"', html)}

    day = old.date()
    assert shown(f"before={day + timedelta(days=1)}") == {seen.id, other.id}
    assert shown(f"since={day}&before={day + timedelta(days=1)}") == {seen.id, other.id}
    assert shown(f"since={day + timedelta(days=1)}") == {samples[2].id, samples[3].id, added[0].id}
    assert len(shown("since=2026-13-45")) == 5  # not a day: no filter
