"""The dynamic loop's speed: data change → new model serving, prediction latency, swaps, memory.

    python benchmarks/serving.py [--quick]

Builds a 500-image project (scikit-learn digits, 10 classes) whose learner is the linear
probe on EfficientNet-Lite0 — the model an image project typically serves — trains it, then
measures (1) adding 10 images → the retrained model serving (excluding the configured delay),
stage by stage; (2) prediction latency over HTTP against a server process, single image and
batches, idle and while a training run is going on, next to the bare ONNX Runtime call as
the in-run baseline; (3) failed requests during 20 swaps under load; (4) resident memory of
the server idle, serving and training. A raw-pixel model (no backbone) trained on the same
images is measured beside it as a reference: it shows what the backbone costs per request.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402
from training_time import digits  # noqa: E402

from dyntrain.codecs import imaging  # noqa: E402
from dyntrain.kernel.config import Settings  # noqa: E402
from dyntrain.kernel.core import Core  # noqa: E402
from dyntrain.datasets.changes import Upload, add_samples  # noqa: E402
from dyntrain.kernel.projects import create_project  # noqa: E402
from dyntrain.scheduler import queue  # noqa: E402
from dyntrain.scheduler.jobs import run_job  # noqa: E402
from dyntrain.storage.rows import ModelVersionRow  # noqa: E402
from dyntrain.training.records import run_detail  # noqa: E402

BACKBONE = ["image.linear_probe"]  # EfficientNet-Lite0 + a linear head: what an image project serves
PIXELS = ["image.pixel_logreg"]  # reference: a few-kB model on raw pixels, no backbone


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def change_to_serving(core: Core, n: int, added: int) -> tuple[str, int]:
    images = digits(n)
    add_samples(core, "bench", [Upload(f"{i}.png", b) for i, (_, b) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, "bench")
    run_job(core, queue.claim_next(core))  # the first full selection (linear learners)
    pid = core.live.production(_pid(core)).project_id
    rows, quick = [], 0
    for trial in range(3):
        new = digits(added, offset=n + trial * added)
        t0 = time.perf_counter()
        add_samples(core, "bench", [Upload(f"n{trial}-{i}.png", b) for i, (_, b) in enumerate(new)],
                    [lab for lab, _ in new])
        t_version = time.perf_counter() - t0
        job = _claim_when_due(core)
        t1 = time.perf_counter()
        run_job(core, job)
        t_total = time.perf_counter() - t1 + t_version
        detail = run_detail(core, queue.get_job(core, "bench", job.id).run_id)
        assert core.live.production(pid).version == detail["model_version"], "new model is not serving"
        timings = detail["result"]["timings"]
        mode = detail["log"].splitlines()[0]
        quick += mode.startswith("quick retrain")
        rows.append([trial + 1, f"{t_total:.2f}", f"{t_version:.2f}", *(f"{timings[k]:.2f}" for k in
                     ("features", "evaluation", "fit", "export")),
                     f"{t_total - t_version - timings['total']:.2f}", mode[:60]])
    body = table(["trial", "total s", "upload+version", "features", "evaluation", "fit", "export",
                  "register+gate+swap", "mode"], rows)
    totals = [float(r[1]) for r in rows]
    body += (f"\n\nAdded data → retrained model serving: median **{statistics.median(totals):.1f} s** "
             f"(min {min(totals):.1f}, max {max(totals):.1f}) over {len(rows)} trials; {quick} of {len(rows)} "
             f"automatic retrains were quick retrains (the mode column is the run's own log line).")
    return body, n + 3 * added


def train_reference(core: Core, n: int) -> None:
    """The raw-pixel reference project, trained once on the same images as ``bench``."""
    create_project(core, "pixels", settings={"auto_train": False, "learners": PIXELS})
    images = digits(n)
    add_samples(core, "pixels", [Upload(f"{i}.png", b) for i, (_, b) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, "pixels")
    run_job(core, queue.claim_next(core))


def served_model(core: Core, project: str) -> str:
    """The served model's learner and ONNX file size, as the report names it."""
    from sqlalchemy import select

    pid = _pid(core, project)
    version = core.live.production(pid).version
    with core.db.read() as s:
        row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == pid,
                                                      ModelVersionRow.version == version)).one()
    size_kb = Path(core.artifacts.model_file(row.path)).stat().st_size / 1024
    return f"`{row.card['learner']}` v{version}, {size_kb / 1024:.1f} MB" if size_kb > 1024 else \
        f"`{row.card['learner']}` v{version}, {size_kb:.0f} kB"


def bare_call_ms(core: Core, project: str, image: bytes, count: int) -> list[float]:
    """The in-run baseline: the bare ONNX Runtime call on the same image, no HTTP, no record."""
    model = core.live.production(_pid(core, project))
    x = imaging.model_input(imaging.decode_image(image))
    model.predict_items([x])  # warm-up
    out = []
    for _ in range(count):
        t = time.perf_counter()
        model.predict_items([x])
        out.append((time.perf_counter() - t) * 1000)
    return out


def bare_throughput(core: Core, project: str, image: bytes, batch: int, seconds: float,
                    callers: int = 1) -> tuple[float, float]:
    """(images per second, CPU ms per image) of ONNX Runtime alone on the same image in batches of
    ``batch``, called by ``callers`` threads at once (the server's request threads call it so)."""
    model = core.live.production(_pid(core, project))
    items = [imaging.model_input(imaging.decode_image(image))] * batch
    model.predict_items(items)
    done, stop, lock = [0], time.monotonic() + seconds, threading.Lock()

    def call():
        while time.monotonic() < stop:
            model.predict_items(items)
            with lock:
                done[0] += batch

    cpu, t = _cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        for f in [pool.submit(call) for _ in range(callers)]:
            f.result()
    return done[0] / (time.perf_counter() - t), (_cpu_s() - cpu) * 1000 / done[0]


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (all threads, user + system) of process ``pid``, or of this one."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid(core: Core, project: str = "bench") -> int:
    from dyntrain.kernel.projects import project_row

    with core.db.read() as s:
        return project_row(s, project).id


def _claim_when_due(core: Core):
    while True:
        job = queue.claim_next(core)
        if job is not None:
            return job
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: int(next(line.split()[1] for line in status.splitlines() if line.startswith(key)))  # noqa: E731
    return get("VmRSS:") / 1024, get("VmHWM:") / 1024


def latencies(url: str, payload: list[tuple[str, bytes]], count: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as c:
        for _ in range(count):
            t = time.perf_counter()
            r = c.post(url, files=[("files", p) for p in payload])
            r.raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
    return out


def load(url: str, payload, seconds: float, clients: int, on_tick=None) -> tuple[int, int, list[float]]:
    stop = time.monotonic() + seconds
    ok, failed, lat = [0], [0], []
    lock = threading.Lock()

    def worker():
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = c.post(url, files=[("files", payload)])
                    good = r.status_code == 200
                except httpx.HTTPError:
                    good = False
                with lock:
                    (ok if good else failed)[0] += 1
                    lat.append((time.perf_counter() - t) * 1000)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker) for _ in range(clients)]
        if on_tick:
            on_tick(stop)
        for f in futures:
            f.result()
    return ok[0], failed[0], lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    n, added, count, seconds = (60, 5, 40, 3.0) if args.quick else (500, 10, 300, 10.0)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    core = Core.create(Settings(data_dir=data_dir, seed_demo=False))
    create_project(core, "bench", settings={"auto_train": True, "train_delay_s": 0, "learners": BACKBONE})
    loop_table, total_images = change_to_serving(core, n, added)
    print(loop_table)
    train_reference(core, n)
    models = {"bench": served_model(core, "bench"), "pixels": served_model(core, "pixels")}
    threads = core.settings.onnx_threads
    core.db.dispose()

    port = _free_port()
    env = {**os.environ, "DYNTRAIN_DATA_DIR": str(data_dir), "DYNTRAIN_SEED_DEMO": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "dyntrain.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        idle_rss, _ = rss_mb(proc.pid)
        idle_loaded = sum(1 for v in httpx.get(base + "/health").json()["serving"].values() if v)
        load_start = os.getloadavg()[0]
        url = base + "/projects/bench/predict"
        ref_url = base + "/projects/pixels/predict"
        image = ("x.png", digits(1, offset=1700)[0][1])
        latencies(url, [image], 10)  # warm up (first request loads the model)
        latencies(ref_url, [image], 10)

        probe = Core.create(Settings(data_dir=data_dir, seed_demo=False), migrate=False)
        bare = bare_call_ms(probe, "bench", image[1], count)
        ref_bare = bare_call_ms(probe, "pixels", image[1], count)

        single = latencies(url, [image], count)
        ref_single = latencies(ref_url, [image], count)
        batch = latencies(url, [image] * 8, max(10, count // 8))
        ok, failed, lat = load(url, image, seconds, clients=4)
        # 8 clients against ONNX Runtime alone on batches of 8 (and of 1), measured back to back.
        ort_batched, batched_cpu = bare_throughput(probe, "bench", image[1], 8, seconds / 2)
        ort_single, single_cpu = bare_throughput(probe, "bench", image[1], 1, seconds / 2)
        ort_concurrent, concurrent_cpu = bare_throughput(probe, "bench", image[1], 1, seconds / 2, callers=8)
        cpu = (_cpu_s(proc.pid), _cpu_s())
        ok8, failed8, lat8 = load(url, image, seconds, clients=8)
        server_cpu, client_cpu = ((_cpu_s(proc.pid) - cpu[0]) * 1000 / ok8, (_cpu_s() - cpu[1]) * 1000 / ok8)
        ort_batched_after, _ = bare_throughput(probe, "bench", image[1], 8, seconds / 2)
        probe.db.dispose()
        serving_rss, _ = rss_mb(proc.pid)

        # While a training run is going on in the server process: a full selection over every learner,
        # in the reference project, so whatever it promotes, `bench` keeps serving its Lite0 model.
        httpx.patch(f"{base}/projects/pixels", json={"settings": {"learners": None, "time_budget_s": 30}})
        httpx.post(f"{base}/projects/pixels/train")
        time.sleep(1.0)
        peak = [serving_rss]

        def sample_memory(stop_at):
            while time.monotonic() < stop_at:
                peak.append(rss_mb(proc.pid)[0])
                time.sleep(0.2)

        ok_t, failed_t, lat_t = load(url, image, seconds, clients=4, on_tick=sample_memory)
        train_single = latencies(url, [image], count // 2)

        # 20 swaps under load: alternate production between the two newest versions.
        versions = sorted(m["version"] for m in httpx.get(f"{base}/projects/bench/models").json())[-2:]

        swapped = [0]

        def swap(stop_at):
            for k in range(20):
                r = httpx.post(f"{base}/projects/bench/models/{versions[k % 2]}/promote", timeout=30)
                swapped[0] += r.status_code == 200
                time.sleep(max(0.0, (stop_at - time.monotonic()) / (21 - k)))

        ok_s, failed_s, _ = load(url, image, max(seconds, 6.0), clients=4, on_tick=swap)
        rss_now, hwm = rss_mb(proc.pid)
        load_end = os.getloadavg()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    def row(case, values, throughput, failed_count):
        return [case, *(f"{pct(values, q):.2f}" if values else "-" for q in (50, 95, 99)), throughput, failed_count]

    rows = [
        row("bare ONNX Runtime call (baseline, in-process)", bare, "-", "-"),
        row("bare ONNX Runtime, batches of 8 (baseline, in-process)", [],
            f"{ort_batched:.0f} img/s (1 by 1: {ort_single:.0f}; 8 threads 1 by 1: {ort_concurrent:.0f})", "-"),
        row("HTTP, 1 image, sequential (record written)", single, f"{1000 / statistics.mean(single):.0f} img/s", "0"),
        row("HTTP, batch of 8, sequential", batch, f"{8000 / statistics.mean(batch):.0f} img/s", "0"),
        row("HTTP, 1 image, 4 clients", lat, f"{ok / seconds:.0f} req/s", str(failed)),
        row("HTTP, 1 image, 8 clients", lat8, f"{ok8 / seconds:.0f} req/s", str(failed8)),
        row("HTTP, 1 image, 4 clients, during training", lat_t, f"{ok_t / seconds:.0f} req/s", str(failed_t)),
        row("HTTP, 1 image, sequential, during training", train_single, "-", "0"),
        ["HTTP, 1 image, 4 clients, 20 swaps", "-", "-", "-", f"{ok_s} requests", str(failed_s)],
        row(f"reference, raw-pixel model ({models['pixels']}): bare ONNX Runtime call", ref_bare, "-", "-"),
        row("reference, raw-pixel model: HTTP, 1 image, sequential", ref_single,
            f"{1000 / statistics.mean(ref_single):.0f} img/s", "0"),
    ]
    lat_table = table(["case", "p50 ms", "p95 ms", "p99 ms", "throughput", "failed"], rows)
    p50, p99, ref_p50 = pct(single, 50), pct(single, 99), pct(ref_single, 50)
    ort_ref = (ort_batched + ort_batched_after) / 2
    ratio = ok8 / seconds / ort_ref
    mem_table = table(["state", "RSS MB"], [[f"idle (started, {idle_loaded} model(s) loaded)", f"{idle_rss:.0f}"],
                                            ["serving", f"{serving_rss:.0f}"],
                                            ["peak sampled during a training run", f"{max(peak):.0f}"],
                                            ["peak over the whole benchmark (VmHWM)", f"{hwm:.0f}"]])
    body = (f"### Data change → new model serving ({n}-image project, +{added} images; delay excluded)\n\n"
            f"Model served at the end: {models['bench']}.\n\n{loop_table}\n\nThe project ended with {total_images} images.\n\n"
            f"### Prediction latency (server process, SQLite, {threads} ONNX threads)\n\n"
            f"Rows without \"reference\" are the Lite0 model ({models['bench']}); load average {load_start:.1f} "
            f"when this part started, {load_end:.1f} when it ended, on {os.cpu_count()} cores (a shared machine: the "
            f"load says how much other work these figures competed with).\n\n{lat_table}\n\n"
            f"HTTP single-image p50 of the Lite0 model is {p50 / pct(bare, 50):.1f}× its bare ONNX call (decode, "
            f"resize, record write, HTTP) and {p50 / ref_p50:.1f}× the raw-pixel reference's HTTP p50 "
            f"({ref_p50:.1f} ms). Goals on the Lite0 model at 1 client: p50 < 12 ms **{'met' if p50 < 12 else 'NOT met'}** "
            f"({p50:.1f} ms), p99 < 30 ms **{'met' if p99 < 30 else 'NOT met'}** ({p99:.1f} ms). With 8 clients "
            f"sending single images the server answered {ok8 / seconds:.0f} req/s, **{ratio:.2f}×** what ONNX "
            f"Runtime alone did on the same image in batches of 8 ({ort_batched:.0f} img/s before, "
            f"{ort_batched_after:.0f} after; goal ≥ 0.6×: **{'met' if ratio >= 0.6 else 'NOT met'}**). "
            f"Batches of 8 ran at {ort_batched / ort_single:.2f}× the images per second of one-by-one calls "
            f"({batched_cpu:.1f} instead of {single_cpu:.1f} CPU ms an image), but 8 threads calling it with one image "
            f"each, as the server's request threads do, reached {ort_concurrent:.0f} img/s "
            f"({ort_concurrent / ort_ref:.2f}× batches of 8), so concurrent requests are not micro-batched: a "
            f"batch would save {'little' if ort_concurrent >= 0.9 * ort_ref else 'some'} model time and each "
            f"request would wait for it. Under the 8 clients the server used {server_cpu:.1f} CPU ms a request, "
            f"{server_cpu - concurrent_cpu:.1f} more than those 8 threads' bare calls ({concurrent_cpu:.1f}): at most "
            f"what the request path costs (HTTP, decoding, the input's blob, the record), since the model also ran "
            f"beside the clients there, who used {client_cpu:.1f} on the same {os.cpu_count()} cores. Prediction records are committed before each answer leaves; concurrent requests "
            f"share one INSERT and commit (`serving/records.py`). Failed requests during {swapped[0]} successful "
            f"swaps under load: {failed_s} (goal 0: **{'met' if failed_s == 0 and swapped[0] == 20 else 'NOT met'}**)."
            f"\n\n"
            f"### Resident memory of the server process\n\n{mem_table}\n\nGoal: under 1.5 GB at peak: "
            f"{'met' if hwm < 1536 else 'NOT met'}.")
    print(body)
    write_section("serving", "The loop: change → serving, latency, swaps, memory (issue 4)", body, quick=args.quick)
    if failed_s or swapped[0] != 20:
        sys.exit(1)


if __name__ == "__main__":
    main()
