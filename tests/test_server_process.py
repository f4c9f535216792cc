"""A real server process: hot swap under concurrent load.

(SIGKILL during uploads, training and promotions: tests/test_crash_safety.py.)
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project
from dyntrain.scheduler import queue
from tests.conftest import wait_for
from tests.scale.servers import ServerProcess

pytestmark = pytest.mark.slow


def _train_three_models(data_dir: Path) -> None:
    """Three model versions trained on different data, so their outputs differ."""
    from dyntrain.scheduler.jobs import run_job

    core = Core.create(Settings(data_dir=data_dir, seed_demo=False))
    create_project(core, "swap", settings={"auto_train": False, "time_budget_s": 1})
    for k, per_class in enumerate((4, 8, 12)):
        images = digit_images(per_class=per_class, offset=40 + 12 * k)
        add_samples(core, "swap", [Upload(f"{k}-{i}.png", d) for i, (_, d) in enumerate(images)],
                    [label for label, _ in images])
        queue.request_training(core, "swap")
        run_job(core, queue.claim_next(core))
    core.db.dispose()


def test_three_promotions_under_load_lose_no_request(tmp_path):
    data_dir = tmp_path / "data"
    _train_three_models(data_dir)
    server = ServerProcess(data_dir, {"DYNTRAIN_SCHEDULER_ENABLED": "false"}).start()
    try:
        api = httpx.Client(base_url=server.api, timeout=30)
        versions = sorted(m["version"] for m in api.get("/projects/swap/models").json())
        assert versions == [1, 2, 3]
        image = digit_images(per_class=1, offset=5)[0][1]
        expected = {}
        for v in versions:
            p = api.post("/projects/swap/predict", params={"version": v}, files=[("files", ("x.png", image))])
            expected[v] = p.json()["predictions"][0]["scores"]
        # distinguishable: every pair of versions differs clearly on this image
        vecs = {v: np.array(list(s.values())) for v, s in expected.items()}
        assert min(np.abs(vecs[a] - vecs[b]).max() for a in versions for b in versions if a < b) > 1e-3
        api.post("/projects/swap/models/1/promote")

        results, failures = [], []
        stop = threading.Event()

        def client():
            with httpx.Client(base_url=server.api, timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/projects/swap/predict", files=[("files", ("x.png", image))])
                        if r.status_code != 200:
                            failures.append(r.status_code)
                        else:
                            results.append(r.json()["predictions"][0])
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                    if len(results) + len(failures) >= 1000:
                        stop.set()

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        served = []
        for v in (2, 3, 1):  # three promotions during the load
            wait_for(lambda: len(results) >= 250 * len(served) + 100, timeout=120, interval=0.05)
            assert api.post(f"/projects/swap/models/{v}/promote").json()["production"] == v
            served.append(v)
        for t in threads:
            t.join(timeout=300)
        assert failures == []
        assert len(results) >= 1000
        seen = {p["model_version"] for p in results}
        assert seen == {1, 2, 3}
        for p in results:  # each response's scores are exactly those of the version it names
            assert max(abs(p["scores"][k] - expected[p["model_version"]][k]) for k in p["scores"]) < 1e-5
        assert api.get("/projects/swap/predictions", params={"limit": 1}).json()["total"] >= 1000
    finally:
        server.stop()
