"""Growth: how the prediction list's latency and the scheduler's tick grow with the data (issue 15).

    python benchmarks/growth.py [--quick]

On one fresh PostgreSQL database (DYNTRAIN_TEST_POSTGRES_URL, like the tests):

1. prediction records: one project grows to 10^4, 10^5 and 10^6 records (``--quick``: 10^3 to
   10^5), a neighbour project to a tenth of that (added after, so its records are the newest); at
   each size an API server process answers the prediction list (first page; the page half-way
   down by ``offset`` and by ``cursor``; filtered by class, by model version, by confidence; least
   confident first) and the project's history page, each request timed from this client. At the largest size the same requests run again with the
   prediction-list indexes of migration 0006 dropped: the baseline, in the same run.
2. the scheduler: one dispatcher tick (recover expired leases, claim the due job) with 10, 100 and
   1,000 projects (``--quick``: up to 300), each with a pending job, a few running.

Records are inserted by SQL (``generate_series``), shaped like real ones: a class, a confidence,
the whole output with ten class scores, one model version of five, one second apart.
Writes ``growth-predictions.svg`` and ``growth-scheduler.svg`` beside RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _results import table, write_section  # noqa: E402

from dyntrain.kernel.config import Settings  # noqa: E402
from dyntrain.kernel.core import Core  # noqa: E402
from dyntrain.kernel.projects import create_project  # noqa: E402
from dyntrain.scheduler.runner import Dispatcher  # noqa: E402
from dyntrain.storage.rows import utcnow  # noqa: E402
from tests.scale.servers import ServerProcess, fresh_pg_database, pg_available  # noqa: E402

GOAL_MS, TICK_GOAL_MS = 100.0, 50.0
# Migration 0006's indexes: dropped for the baseline at the largest size, then put back.
INDEXES = {"ix_predictions_project_id": "(project_id, id) INCLUDE (confidence)",
           "ix_predictions_project_label": "(project_id, label, id)",
           "ix_predictions_project_confidence": "(project_id, confidence, id)",
           "ix_predictions_project_version": "(project_id, model_version, id)"}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def dbapi_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def add_records(conn, project_id: int, start: int, stop: int) -> None:
    """Records start+1 … stop of a project, one second apart, ending now."""
    conn.execute("""
        INSERT INTO predictions (project_id, model_version, label, confidence, output, input_hash,
                                 input_stored, latency_ms, client, created_at)
        SELECT %(p)s, 1 + g %% 5, 'class-' || g %% 10, c,
               json_build_object('label', 'class-' || g %% 10, 'confidence', c,
                                 'scores', (SELECT json_object_agg('class-' || k, round((c / (1 + k))::numeric, 4))
                                            FROM generate_series(0, 9) k)),
               md5(g::text) || md5((g + 1)::text), true, 9.5, '127.0.0.1',
               now() - (%(stop)s - g) * interval '1 second'
        FROM (SELECT g, random() AS c FROM generate_series(%(start)s + 1, %(stop)s) g) AS r""",
                 {"p": project_id, "start": start, "stop": stop})


def requests_for(conn, project_id: int, records: int) -> dict[str, tuple[str, dict]]:
    """The timed requests: (path, query) each. The cursor half-way down is read off the table."""
    middle = conn.execute("SELECT id FROM predictions WHERE project_id = %s ORDER BY id DESC OFFSET %s LIMIT 1",
                          (project_id, records // 2 - 1)).fetchone()[0]
    api = "/api/v1/projects/grow/predictions"
    return {
        "list, first page (newest, 100)": (api, {}),
        "list, page half-way down by offset": (api, {"offset": records // 2}),
        "list, page half-way down by cursor": (api, {"cursor": str(middle)}),
        "filter: one class": (api, {"label": "class-3"}),
        "filter: one model version": (api, {"version": 3}),
        "filter: confidence ≤ 0.2": (api, {"max_confidence": 0.2}),
        "least confident first": (api, {"order": "least_confident"}),
        "history page (HTML)": ("/projects/grow/history", {}),
    }


def time_requests(base: str, requests: dict, count: int) -> dict[str, list[float]]:
    """Each request ``count`` times, interleaved (so load on the machine hits them alike)."""
    out = {name: [] for name in requests}
    with httpx.Client(base_url=base, timeout=60) as client:
        for name, (path, params) in requests.items():  # warm: plans cached, pages in memory
            client.get(path, params=params).raise_for_status()
        for _ in range(count):
            for name, (path, params) in requests.items():
                t = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                out[name].append((time.perf_counter() - t) * 1000)
    return out


def predictions_part(url: str, tmp: Path, sizes: list[int], count: int) -> tuple[str, dict]:
    import psycopg

    core = Core.create(Settings(data_dir=tmp / "core", database_url=url, seed_demo=False, scheduler_enabled=False))
    grow, neighbour = create_project(core, "grow").id, create_project(core, "neighbour").id
    core.db.dispose()
    server = ServerProcess(tmp / "api", {"DYNTRAIN_DATABASE_URL": url, "DYNTRAIN_SCHEDULER_ENABLED": "false"},
                           role="api").start()
    curves: dict[str, list[float]] = {}
    rows, baseline, insert_s = [], {}, []
    try:
        with psycopg.connect(dbapi_url(url), autocommit=True) as conn:
            have = 0
            for size in sizes:
                t = time.perf_counter()
                add_records(conn, grow, have, size)
                add_records(conn, neighbour, have // 10, size // 10)
                insert_s.append((size, time.perf_counter() - t))
                have = size
                conn.execute("VACUUM ANALYZE predictions")  # what autovacuum does after such growth
                requests = requests_for(conn, grow, size)
                timed = time_requests(server.api.removesuffix("/api/v1"), requests, count)
                for name, values in timed.items():
                    curves.setdefault(name, []).append(pct(values, 95))
                rows.append((size, {name: (pct(v, 50), pct(v, 95)) for name, v in timed.items()}))
            for name in INDEXES:
                conn.execute(f"DROP INDEX {name}")
            conn.execute("ANALYZE predictions")
            timed = time_requests(server.api.removesuffix("/api/v1"), requests, max(5, count // 3))
            baseline = {name: (pct(v, 50), pct(v, 95)) for name, v in timed.items()}
            t = time.perf_counter()
            for name, columns in INDEXES.items():
                conn.execute(f"CREATE INDEX {name} ON predictions {columns}")
            rebuild_s = time.perf_counter() - t
            conn.execute("ANALYZE predictions")
    finally:
        server.stop()
    largest = sizes[-1]
    names = list(rows[0][1])
    head = ["request"] + [f"{size:,} records p50 / p95 ms" for size, _ in rows] + [
        f"{largest:,} without the 0006 indexes (baseline) p50 / p95 ms"]
    body = [[name] + [f"{r[name][0]:.1f} / {r[name][1]:.1f}" for _, r in rows]
            + [f"{baseline[name][0]:.1f} / {baseline[name][1]:.1f}"] for name in names]
    judged = [n for n in names if "offset" not in n]  # offset paging is shown as what the cursor replaces
    worst = max(judged, key=lambda n: rows[-1][1][n][1])
    worst_p95 = rows[-1][1][worst][1]
    first_p95 = {n: rows[0][1][n][1] for n in names}
    growth = {n: rows[-1][1][n][1] / first_p95[n] for n in names}
    speedups = {n: baseline[n][1] / rows[-1][1][n][1] for n in names}
    text = (table(head, body)
            + f"\n\n{count} requests each per size, interleaved, timed by the client (HTTP included), against "
              f"`dyntrain serve --role api` on PostgreSQL; a neighbour project holds a tenth as many records, "
              f"added after each step (so the newest records in the table are never the measured project's). "
              f"Inserting the records took "
              + ", ".join(f"{s:.1f} s to reach {n:,}" for n, s in insert_s)
              + f"; rebuilding the four indexes at {largest:,}: {rebuild_s:.1f} s.\n\n"
              f"From {sizes[0]:,} to {largest:,} records (×{largest // sizes[0]}), the p95 grew "
              + ", ".join(f"×{growth[n]:.1f} ({n})" for n in names) + ".  \n"
              f"At {largest:,}, p95 without the 0006 indexes ÷ p95 with them (same run): "
              + ", ".join(f"{speedups[n]:.1f} ({n})" for n in names if n in judged and "history" not in n)
              + " (above 1: the indexes help; the history page reads no prediction records).  \n"
              f"Goal: p95 under {GOAL_MS:.0f} ms at {largest:,} records for the list, its filters, cursor "
              f"paging and the history page: **{'met' if worst_p95 < GOAL_MS else 'NOT met'}** (slowest: "
              f"{worst}, {worst_p95:.1f} ms). The page half-way down by offset takes "
              f"{rows[-1][1]['list, page half-way down by offset'][1]:.1f} ms at p95 against "
              f"{rows[-1][1]['list, page half-way down by cursor'][1]:.1f} ms by cursor: the database walks "
              "past every skipped record, so deep pages go by `next_cursor`. `total` is counted up to "
              "10,000 (`total_exact` says when there are more).")
    return text, {"sizes": sizes, "curves": curves, "baseline": {n: baseline[n][1] for n in names}}


class OneJobExecutor:
    """Takes one job per tick and hands it straight back (re-delayed outside the timing), so every
    tick finds the same table: the scheduler's own cost, not training's."""

    def __init__(self):
        self.taken = []

    def has_capacity(self) -> bool:
        return not self.taken

    def submit(self, core, job) -> None:
        self.taken.append(job.id)

    def shutdown(self) -> None:
        pass


def scheduler_part(url: str, tmp: Path, counts: list[int], ticks: int) -> tuple[str, dict]:
    import psycopg

    core = Core.create(Settings(data_dir=tmp / "sched", database_url=url, seed_demo=False, scheduler_enabled=False))
    rows, curve = [], []
    made = 0
    with psycopg.connect(dbapi_url(url), autocommit=True) as conn:
        for n in counts:
            t = time.perf_counter()
            for i in range(made, n):
                pid = create_project(core, f"sched-{i}").id
                # Each project's pending job (a data change waiting out its delay); every 50th runs.
                status, lease = ("running", utcnow() + timedelta(hours=1)) if i % 50 == 49 else ("delayed", None)
                conn.execute("INSERT INTO jobs (project_id, status, trigger, run_at, attempt, max_attempts, "
                             "lease_until, cancel_requested, progress, created_at) VALUES (%s, %s, 'auto', %s, 0, 3, "
                             "%s, false, '{}', now())",
                             (pid, status, utcnow() + timedelta(hours=1), lease))
            made_s = time.perf_counter() - t
            made = n
            conn.execute("VACUUM ANALYZE jobs")
            executor = OneJobExecutor()
            dispatcher = Dispatcher(core, executor)
            idle, busy = [], []
            for k in range(ticks):
                executor.taken = [-1]  # no capacity: the tick only recovers leases
                t = time.perf_counter()
                dispatcher.tick()
                idle.append((time.perf_counter() - t) * 1000)
                # One project's delay has just run out: the tick claims its job.
                conn.execute("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = (SELECT id FROM jobs "
                             "WHERE status = 'delayed' ORDER BY id LIMIT 1 OFFSET %s)", (k % max(1, n // 2),))
                executor.taken = []
                t = time.perf_counter()
                dispatcher.tick()
                busy.append((time.perf_counter() - t) * 1000)
                assert len(executor.taken) == 1, "the due job was not claimed"
                conn.execute("UPDATE jobs SET status = 'delayed', run_at = now() + interval '1 hour', "
                             "lease_until = NULL WHERE id = %s", (executor.taken[0],))
            rows.append([f"{n:,}", f"{pct(idle, 50):.1f} / {pct(idle, 95):.1f}",
                         f"{pct(busy, 50):.1f} / {pct(busy, 95):.1f}", f"{made_s:.1f}"])
            curve.append((pct(idle, 95), pct(busy, 95)))
    core.db.dispose()
    worst = curve[-1][1]
    text = (table(["projects (each with a pending job; 1 in 50 running)", "tick, nothing due: p50 / p95 ms",
                   "tick claiming the due job: p50 / p95 ms", "creating those projects s"], rows)
            + f"\n\n{ticks} ticks each, in-process against PostgreSQL (`Dispatcher.tick`: recover expired leases, "
              "claim the most overdue job of a project with nothing running; the executor takes it and it is "
              f"re-delayed outside the timing). From {counts[0]:,} to {counts[-1]:,} projects "
              f"(×{counts[-1] // counts[0]}), the claiming tick's p95 grew ×{curve[-1][1] / curve[0][1]:.1f}. "
              f"Goal: one tick under {TICK_GOAL_MS:.0f} ms with {counts[-1]:,} projects: "
              f"**{'met' if worst < TICK_GOAL_MS else 'NOT met'}** (p95 {worst:.1f} ms).")
    return text, {"counts": counts, "curve": curve}


def keeps_full_figures(quick: bool) -> bool:
    """A --quick run leaves a full run's section (see _results.write_section) and so its plots."""
    from _results import RESULTS

    text = RESULTS.read_text() if RESULTS.exists() else ""
    start = text.find("<!-- growth:start -->")
    return quick and start >= 0 and "`--quick` run" not in text[start:text.find("<!-- growth:end -->")]


def plots(pred: dict, sched: dict) -> tuple[str, str]:
    """Two small SVG curves beside RESULTS.md (log-log: a flat line is a cost that does not grow)."""
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 8, "svg.hashsalt": "dyntrain"})
    names = []
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, values in pred["curves"].items():
        line, = ax.plot(pred["sizes"], values, marker="o", linestyle="--" if "offset" in name else "-", label=name)
        ax.plot([pred["sizes"][-1]], [pred["baseline"][name]], marker="x", color=line.get_color())
    ax.plot([], [], marker="x", color="grey", linestyle="none", label="× = without the 0006 indexes")
    ax.axhline(GOAL_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="prediction records in the project", ylabel="p95 ms (HTTP)",
           title="Prediction list and history page vs records")
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    names.append("growth-predictions.svg")
    fig.savefig(Path(__file__).with_name(names[-1]), metadata={"Date": None})
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(sched["counts"], [c[0] for c in sched["curve"]], marker="o", label="nothing due")
    ax.plot(sched["counts"], [c[1] for c in sched["curve"]], marker="o", label="claiming the due job")
    ax.axhline(TICK_GOAL_MS, color="grey", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="projects", ylabel="p95 ms per tick", title="Scheduler tick vs projects")
    ax.legend(fontsize=7)
    fig.tight_layout()
    names.append("growth-scheduler.svg")
    fig.savefig(Path(__file__).with_name(names[-1]), metadata={"Date": None})
    plt.close(fig)
    return names[0], names[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (well under 2 minutes)")
    args = parser.parse_args()
    if not pg_available():
        print("PostgreSQL unreachable (DYNTRAIN_TEST_POSTGRES_URL): the growth benchmark needs it")
        if os.environ.get("CI"):
            sys.exit(1)
        return
    sizes, count = ([1_000, 10_000, 100_000], 10) if args.quick else ([10_000, 100_000, 1_000_000], 30)
    counts, ticks = ([10, 100, 300], 10) if args.quick else ([10, 100, 1_000], 30)
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dt-growth-") as d, fresh_pg_database() as url:
        print("1. prediction records", flush=True)
        pred_text, pred = predictions_part(url, Path(d), sizes, count)
        print(pred_text, flush=True)
        print("2. scheduler", flush=True)
        sched_text, sched = scheduler_part(url, Path(d), counts, ticks)
        print(sched_text)
    if keeps_full_figures(args.quick):
        print("(--quick: the full run's figures and plots are kept)")
        return
    pred_svg, sched_svg = plots(pred, sched)
    body = (f"Load average {load_start:.1f} when this benchmark started, {os.getloadavg()[0]:.1f} when it ended, "
            f"on {os.cpu_count()} cores (a shared machine: the load says how much other work these figures "
            f"competed with).\n\n"
            f"### Prediction list and history page vs prediction records\n\n![p95 vs records]({pred_svg})\n\n"
            f"{pred_text}\n\n### Scheduler tick vs projects\n\n![tick vs projects]({sched_svg})\n\n{sched_text}"
            f"\n\n_Whole benchmark: {time.monotonic() - started:.0f} s._")
    write_section("growth", "Growth: prediction records to 10^6, scheduler to 1,000 projects (issue 15)", body,
                  quick=args.quick)


if __name__ == "__main__":
    main()
