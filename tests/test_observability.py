"""Observability: Prometheus metrics at /metrics, request ids, structured JSON logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dyntrain.ops.demo import digit_images
from dyntrain.ops.observability import ContextFilter, JsonFormatter, Metrics, configure_logging, job_context
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job

QUICK = {"auto_train": False, "learners": ["image.pixel_logreg"], "time_budget_s": 5}


def _samples(client) -> dict[str, list]:
    """Every sample of /metrics: name → [(labels, value), ...]."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _value(samples, name, **labels) -> float:
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items()))


@pytest.fixture
def served(client, core):
    """A project with a model in service (pixel logistic regression: the cheapest real training)."""
    assert client.post("/api/v1/projects", json={"name": "digits", "settings": QUICK}).status_code == 201
    images = digit_images(per_class=6)
    r = client.post("/api/v1/projects/digits/samples", files=[("files", (f"{i}.png", d)) for i, (_, d) in enumerate(images)],
                    data={"labels": [lab for lab, _ in images]})
    assert r.status_code == 201, r.text
    queue.request_training(core, "digits")
    run_job(core, queue.claim_next(core))
    return client


def test_metrics_after_requests_training_and_predictions(served, core):
    image = digit_images(per_class=1, offset=30)[0][1]
    for _ in range(2):
        r = served.post("/api/v1/projects/digits/predict", files=[("files", ("a.png", image)), ("files", ("b.png", image))])
        assert r.status_code == 200, r.text
    served.get("/api/v1/projects/no-such-project")
    queue.request_training(core, "digits")  # one job waiting in the queue
    m = _samples(served)

    # Latency per route TEMPLATE (never the raw path, so the label set stays bounded).
    predict = dict(method="POST", route="/api/v1/projects/{name}/predict", status="200")
    assert _value(m, "dyntrain_http_request_duration_seconds_count", **predict) == 2
    assert _value(m, "dyntrain_http_request_duration_seconds_bucket", le="+Inf", **predict) == 2
    assert _value(m, "dyntrain_http_request_duration_seconds_count", route="/api/v1/projects/{name}", status="404") == 1
    routes = {labels["route"] for labels, _ in m["dyntrain_http_request_duration_seconds_count"]}
    assert not any("digits" in r or "no-such-project" in r for r in routes), routes

    assert _value(m, "dyntrain_predictions_total", project="digits", model_version="1") == 4
    assert _value(m, "dyntrain_model_swaps_total", project="digits") == 1
    for stage in ("features", "selection", "evaluation", "fit", "export", "gate", "total"):
        assert _value(m, "dyntrain_training_stage_seconds_count", stage=stage) == 1, stage
    assert _value(m, "dyntrain_training_stage_seconds_sum", stage="total") > 0
    # Queue depth is read from the jobs table when scraped.
    depth = {labels["status"]: v for labels, v in m["dyntrain_queue_depth"]}
    assert depth == {"delayed": 0, "queued": 1, "running": 0}


def test_unmatched_paths_share_one_label(client):
    for path in ("/nope/1", "/nope/2", "/api/v1/zzz"):
        assert client.get(path).status_code == 404
    m = _samples(client)
    assert _value(m, "dyntrain_http_request_duration_seconds_count", route="unmatched", status="404") == 3


def test_each_app_has_its_own_registry():
    a, b = Metrics(), Metrics()  # the global registry would raise "Duplicated timeseries"
    a.prediction("p", 1, 3)
    assert b"dyntrain_predictions_total" in a.render()[0]
    assert b'project="p"' not in b.render()[0]


def test_request_id_is_echoed_or_generated(client):
    r = client.get("/api/v1/health", headers={"X-Request-ID": "trace-42.a"})
    assert r.headers["x-request-id"] == "trace-42.a"
    generated = client.get("/api/v1/health").headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    # A header that could forge log lines (or is absurdly long) is replaced, not echoed.
    for bad in ("x" * 500, "a b\tc"):
        got = client.get("/api/v1/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert got != bad and len(got) == 32
    # Errors carry it too.
    r = client.get("/api/v1/projects/none", headers={"X-Request-ID": "err-1"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "err-1"


@pytest.fixture
def json_log():
    """JSON lines from every logger, as the server writes them (configure_logging), restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    assert configure_logging("json", "INFO", stream=stream) == "json"
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def test_access_log_line_is_json_with_the_request_id(client, json_log):
    client.get("/api/v1/projects/missing", headers={"X-Request-ID": "req-abc"})
    lines = [r for r in json_log() if r["logger"] == "dyntrain.http"]
    line = next(r for r in lines if r.get("request_id") == "req-abc")
    assert line["status"] == 404 and line["route"] == "/api/v1/projects/{name}"
    assert line["path"] == "/api/v1/projects/missing" and line["method"] == "GET" and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["time"].endswith("Z")


def test_job_logs_carry_job_id_and_project(json_log):
    log = logging.getLogger("dyntrain.scheduler.jobs")
    with job_context(job_id=7, project="shop"):
        log.warning("something about this run")
    log.warning("outside any job")
    inside, outside = [r for r in json_log() if r["logger"] == "dyntrain.scheduler.jobs"]
    assert inside["job_id"] == 7 and inside["project"] == "shop" and inside["message"] == "something about this run"
    assert "job_id" not in outside and "request_id" not in outside


def test_exceptions_are_one_json_line():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here" and "ValueError: boom" in parsed["exception"]


def test_auto_format_is_text_on_a_terminal_json_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert configure_logging("auto", stream=Tty()) == "text"
        assert configure_logging("auto", stream=io.StringIO()) == "json"
        with pytest.raises(ValueError):
            configure_logging("xml")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
