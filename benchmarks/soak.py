"""Soak: prediction load held on a real server process for 5 minutes (--quick: 20 s).

    python benchmarks/soak.py [--quick] [--seconds S] [--clients N]

Trains a small digits project (linear probe on EfficientNet-Lite0, the model most projects
serve), starts ``dyntrain serve`` with JSON logs, and holds single-image predictions from a
fixed number of concurrent clients (keep-alive httpx, one request in flight each). Records
rate, p50/p99 latency, errors (goal 0) and the server's resident memory from start to end;
the in-run baseline is the first window (first minute) against the last one: a leak or a
slow-down shows as a latency ratio above 1 or RSS growing between them. At the end the
server's own /metrics and log lines are checked against what the clients saw.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402
from serving import _free_port, pct, rss_mb, served_model  # noqa: E402
from training_time import digits  # noqa: E402

from dyntrain.kernel.config import Settings  # noqa: E402
from dyntrain.kernel.core import Core  # noqa: E402
from dyntrain.datasets.changes import Upload, add_samples  # noqa: E402
from dyntrain.kernel.projects import create_project  # noqa: E402
from dyntrain.scheduler import queue  # noqa: E402
from dyntrain.storage.rows import PredictionRow  # noqa: E402
from dyntrain.scheduler.jobs import run_job  # noqa: E402


def prepare(data_dir: Path, n: int) -> tuple[str, int]:
    """Train the soak project; (the served model as the report names it, ONNX threads of serving)."""
    core = Core.create(Settings(data_dir=data_dir, seed_demo=False))
    create_project(core, "soak", settings={"auto_train": False, "learners": ["image.linear_probe"]})
    images = digits(n)
    add_samples(core, "soak", [Upload(f"{i}.png", b) for i, (_, b) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, "soak")
    run_job(core, queue.claim_next(core))
    model = served_model(core, "soak")
    core.db.dispose()
    return model, core.settings.onnx_threads


def recorded(data_dir: Path) -> tuple[int, int]:
    """(prediction records, of which with the input stored) in the server's database."""
    from sqlalchemy import func, select

    core = Core.create(Settings(data_dir=data_dir, seed_demo=False), migrate=False)
    with core.db.read() as s:
        total, stored = s.execute(select(func.count(), func.count().filter(PredictionRow.input_stored))).one()
    core.db.dispose()
    return int(total), int(stored)


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DYNTRAIN_DATA_DIR": str(data_dir), "DYNTRAIN_SEED_DEMO": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "dyntrain.cli", "serve", "--port", str(port), "--log-format", "json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def hold(url: str, images: list[bytes], seconds: float, clients: int, pid: int):
    """Each client posts one image at a time until the time is up; RSS sampled every second."""
    t0 = time.monotonic()
    stop = t0 + seconds
    done: list[tuple[float, float, bool]] = []  # (finished at, latency ms, ok)
    errors: list[str] = []
    memory: list[tuple[float, float]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = k
            while time.monotonic() < stop:
                image = images[i % len(images)]
                i += clients
                t = time.perf_counter()
                try:
                    r = c.post(url, files=[("files", ("x.png", image))])
                    ok = r.status_code == 200 and "label" in r.json()["predictions"][0]
                    why = "" if ok else f"{r.status_code} {r.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    ok, why = False, repr(exc)
                end = time.monotonic()
                with lock:
                    done.append((end - t0, (time.perf_counter() - t) * 1000, ok))
                    if not ok:
                        errors.append(why)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    while time.monotonic() < stop:
        memory.append((time.monotonic() - t0, rss_mb(pid)[0]))
        time.sleep(1.0)
    for t in threads:
        t.join(timeout=60)
    memory.append((time.monotonic() - t0, rss_mb(pid)[0]))
    return done, errors, memory


def window(done, memory, lo: float, hi: float) -> dict:
    lat = [ms for at, ms, ok in done if lo <= at < hi and ok]
    rss = [mb for at, mb in memory if lo <= at <= hi]
    return {"n": len(lat), "rate": len(lat) / (hi - lo), "p50": pct(lat, 50), "p99": pct(lat, 99),
            "rss": rss[-1] if rss else float("nan")}


def scrape(base: str) -> tuple[float, float]:
    """Predictions counted by the server and its request-latency count for the predict route."""
    from prometheus_client.parser import text_string_to_metric_families

    predictions = requests = 0.0
    for family in text_string_to_metric_families(httpx.get(base + "/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "dyntrain_predictions_total" and s.labels.get("project") == "soak":
                predictions += s.value
            if (s.name == "dyntrain_http_request_duration_seconds_count"
                    and s.labels.get("route") == "/api/v1/projects/{name}/predict" and s.labels.get("status") == "200"):
                requests += s.value
    return predictions, requests


def check_logs(log: Path) -> tuple[int, int, int]:
    """(JSON access-log lines for predictions, lines carrying a request id, lines that are not JSON)."""
    predict = with_id = not_json = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            not_json += 1
            continue
        if record.get("logger") == "dyntrain.http" and record.get("route") == "/api/v1/projects/{name}/predict":
            predict += 1
            with_id += bool(record.get("request_id"))
    return predict, with_id, not_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s instead of 5 minutes, for CI")
    parser.add_argument("--seconds", type=float, default=None, help="how long to hold the load")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (one request in flight each)")
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 300.0)
    span = 5.0 if seconds < 120 else 60.0  # the first and last windows compared

    data_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    model, threads = prepare(data_dir, 60 if args.quick else 120)
    images = [b for _, b in digits(20, offset=1700)]
    port = _free_port()
    log = data_dir / "server.log"
    load_before = os.getloadavg()
    proc = start_server(data_dir, port, log)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/api/v1/projects/soak/predict"
    try:
        with httpx.Client(timeout=30) as c:  # warm up: the first request loads the model
            for image in images:
                c.post(url, files=[("files", ("x.png", image))]).raise_for_status()
        rss_start, _ = rss_mb(proc.pid)
        done, errors, memory = hold(url, images, seconds, args.clients, proc.pid)
        rss_end, hwm = rss_mb(proc.pid)
        counted, timed = scrape(base)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    load_after = os.getloadavg()
    records, stored = recorded(data_dir)

    ok = [ms for _, ms, good in done if good]
    first, last = window(done, memory, 0, span), window(done, memory, seconds - span, seconds)
    predict_lines, with_id, not_json = check_logs(log)
    warm = len(images)
    served = len(ok) + warm
    agrees = counted == timed == predict_lines == with_id == records == served
    rows = [["whole run", f"{len(ok) / seconds:.1f}", f"{pct(ok, 50):.1f}", f"{pct(ok, 99):.1f}", str(len(errors)),
             f"{len(ok)}"],
            [f"first {span:.0f} s (baseline)", f"{first['rate']:.1f}", f"{first['p50']:.1f}", f"{first['p99']:.1f}",
             "-", str(first["n"])],
            [f"last {span:.0f} s", f"{last['rate']:.1f}", f"{last['p50']:.1f}", f"{last['p99']:.1f}", "-",
             str(last["n"])]]
    marks = np.arange(0, seconds + 1e-9, span)  # RSS at each window boundary: the closest sample
    timeline = [min(memory, key=lambda m: abs(m[0] - t)) for t in marks]
    body = (
        f"{args.clients} concurrent clients, one image per request (64×64 PNG digit, served by {model}), for "
        f"{seconds:.0f} s against `dyntrain serve --log-format json` ({threads} ONNX threads). Machine load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores.\n\n"
        + table(["window", "req/s", "p50 ms", "p99 ms", "errors", "requests"], rows)
        + f"\n\nLast window against the first: p50 ×{last['p50'] / first['p50']:.2f}, p99 ×{last['p99'] / first['p99']:.2f}, "
        f"rate ×{last['rate'] / first['rate']:.2f}.\n\n"
        + table(["resident memory", "MB"], [["start (model loaded, warmed)", f"{rss_start:.0f}"],
                                            [f"end (after {len(ok)} predictions)", f"{rss_end:.0f}"],
                                            ["growth", f"{rss_end - rss_start:+.0f}"],
                                            ["peak (VmHWM)", f"{hwm:.0f}"]])
        + f"\n\nRSS every {span:.0f} s: " + ", ".join(f"{mb:.0f}" for _, mb in timeline) + " MB"
        + f"\n\nThe server's own records against the clients' {len(ok)} + {warm} warm-up successful predictions: "
        f"/metrics counted {counted:.0f} predictions and {timed:.0f} timed predict requests; its stderr holds "
        f"{predict_lines} JSON access-log lines for predictions, {with_id} with a request id, and {not_json} lines "
        f"that are not JSON; its database holds {records} prediction records, {stored} with the input stored. "
        f"They **{'agree' if agrees else 'DO NOT agree'}**.\n\n"
        f"Goals: errors = 0 — {'met' if not errors else 'NOT met: ' + '; '.join(errors[:3])}; "
        f"no slow-down (last p50 within 1.5× the first) — {'met' if last['p50'] <= 1.5 * first['p50'] else 'NOT met'}; "
        f"no leak (RSS growth under 50 MB) — {'met' if rss_end - rss_start < 50 else 'NOT met'}.")
    print(body)
    write_section("soak", "Soak: prediction load held for minutes (issue 9)", body, quick=args.quick)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
