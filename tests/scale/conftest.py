"""Fixtures of the scale-out tests: a Ray cluster, fresh PostgreSQL databases, small projects."""

from __future__ import annotations

import httpx
import pytest

from dyntrain.ops.demo import digit_images
from tests.conftest import require_postgres
from tests.scale.servers import fresh_pg_database, pg_available

# Small and fast: a run takes seconds (the lead's recipe for tests).
FAST = {"learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 5}


@pytest.fixture
def pg_url():
    require_postgres(pg_available())
    with fresh_pg_database() as url:
        yield url


def upload(api: httpx.Client, project: str, images: list[tuple[str, bytes]]) -> dict:
    r = api.post(f"/projects/{project}/samples",
                 files=[("files", (f"{label}-{i}.png", data)) for i, (label, data) in enumerate(images)],
                 data={"labels": [label for label, _ in images]})
    assert r.status_code == 201, r.text
    return r.json()


def new_project(api: httpx.Client, name: str, images=None, **settings) -> None:
    r = api.post("/projects", json={"name": name, "settings": {**FAST, "auto_train": False, **settings}})
    assert r.status_code == 201, r.text
    upload(api, name, images if images is not None else digit_images(per_class=8))
