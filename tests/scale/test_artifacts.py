"""The shared artifact store: S3 (moto's server on 127.0.0.1) and a shared path."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from dyntrain.codecs import imaging
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.errors import NotFound
from dyntrain.kernel.projects import create_project
from dyntrain.scheduler import queue
from dyntrain.storage.artifacts import PathArtifacts, S3Artifacts, open_artifacts
from dyntrain.storage.blobs import sha256_hex
from tests.scale.conftest import FAST
from tests.scale.servers import free_port

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket; yields its endpoint URL."""
    import boto3  # noqa: F401  (the dev extra installs it)
    import moto  # noqa: F401  (the dev extra installs it)
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        import boto3

        boto3.session.Session(**_aws()).client("s3", endpoint_url=endpoint).create_bucket(Bucket="dyntrain")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def _aws() -> dict:
    return {"aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
            "region_name": AWS["AWS_DEFAULT_REGION"]}


@pytest.fixture
def aws_env(monkeypatch):
    for k, v in AWS.items():
        monkeypatch.setenv(k, v)


def test_store_is_chosen_by_url(tmp_path, aws_env):
    local = open_artifacts(Settings(data_dir=tmp_path / "d"))
    assert isinstance(local, PathArtifacts) and local.model_dir == tmp_path / "d" / "models"
    shared = Settings(data_dir=tmp_path / "d", artifacts=str(tmp_path / "shared"))
    assert shared.blob_dir == tmp_path / "shared" / "blobs" and shared.model_dir == tmp_path / "shared" / "models"
    remote = open_artifacts(Settings(data_dir=tmp_path / "d", artifacts="s3://bucket/some/prefix/",
                                     s3_endpoint_url="http://127.0.0.1:9"))
    assert isinstance(remote, S3Artifacts) and (remote.bucket, remote.prefix) == ("bucket", "some/prefix")


def test_blobs_round_trip_through_s3(s3, tmp_path, aws_env):
    one = S3Artifacts("s3://dyntrain/rt", tmp_path / "a" / "blobs", tmp_path / "a" / "models", endpoint_url=s3)
    other = S3Artifacts("s3://dyntrain/rt", tmp_path / "b" / "blobs", tmp_path / "b" / "models", endpoint_url=s3)
    data = b"\x89PNG fake image bytes" * 100
    digest = one.blobs.put(data)
    assert digest == sha256_hex(data) and one.blobs.put(data) == digest  # same content, stored once
    assert other.blobs.exists(digest) and other.blobs.get(digest) == data  # another machine reads it
    assert (tmp_path / "b" / "blobs" / digest[:2] / digest[2:]).exists()  # …through its local cache
    keys = [o["Key"] for o in one.client.list_objects_v2(Bucket="dyntrain", Prefix="rt/")["Contents"]]
    assert keys == [f"rt/blobs/{digest[:2]}/{digest[2:]}"]
    other.blobs.delete(digest)
    assert not one.blobs.exists(digest)
    with pytest.raises(NotFound):
        S3Artifacts("s3://dyntrain/rt", tmp_path / "c" / "blobs", tmp_path / "c" / "models",
                    endpoint_url=s3).blobs.get(digest)
    with pytest.raises(NotFound):
        one.model_file("nope/v1.onnx")


@pytest.mark.slow
def test_trained_model_and_data_reach_another_machine_through_s3(s3, tmp_path, aws_env):
    """Machine A takes data and trains; machine B, sharing only the database and S3, serves it."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    common = {"database_url": db, "artifacts": "s3://dyntrain/deploy", "s3_endpoint_url": s3,
              "seed_demo": False, "scheduler_enabled": False}
    a = Core.create(Settings(data_dir=tmp_path / "a", **common))
    b = Core.create(Settings(data_dir=tmp_path / "b", **common))
    try:
        project = create_project(a, "s3p", settings={**FAST, "auto_train": False})
        images = digit_images(per_class=8)
        add_samples(a, "s3p", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)], [lab for lab, _ in images])
        from dyntrain.scheduler.jobs import run_job

        queue.request_training(a, "s3p")
        run_job(a, queue.claim_next(a))
        model = b.live.production(project.id)  # B has no local copy: fetched from S3
        assert model.version == 1
        assert any((tmp_path / "b" / "models").rglob("v1-*.onnx"))
        keys = {o["Key"] for o in a.artifacts.client.list_objects_v2(Bucket="dyntrain", Prefix="deploy/models/")
                ["Contents"]}
        assert any(k.endswith(".onnx") for k in keys) and any(k.endswith(".json") for k in keys)
        test = digit_images(per_class=2, offset=40)
        batch = np.stack([imaging.model_input(imaging.decode_image(d)) for _, d in test])
        labels = [model.labels[i] for i in np.asarray(model.predict_items(list(batch))).argmax(1)]
        assert np.mean([p == t for p, (t, _) in zip(labels, test)]) >= 0.5
        assert b.blobs.get(sha256_hex(images[0][1])) == images[0][1]  # B reads A's training data
    finally:
        a.db.dispose()
        b.db.dispose()
