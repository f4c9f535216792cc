"""Time to train, per stage: cold (no cached features), incremental quick retrain, full selection.

    python benchmarks/training_time.py [--quick]

Data: scikit-learn's bundled digits (10 classes), upscaled to 64 px PNGs.
Goals (2 cores): incremental reuse run < 2 s; cold 500 images with linear learners < 10 s;
full selection within its time budget (issue 3); cold < 5 s and incremental < 1 s (issue 15).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.kernel.entities import VersionItem  # noqa: E402
from dyntrain.learners.features import FeatureExtractor  # noqa: E402
from dyntrain.learners.backbone import export_backbone  # noqa: E402
from dyntrain.storage import FileBlobStore  # noqa: E402
from dyntrain.training.pipeline import TrainingSpec, train  # noqa: E402

LINEAR = ({"learner": "image.linear_probe", "params": {"C": 10.0}},
          {"learner": "image.pixel_logreg", "params": {"C": 0.1}},
          {"learner": "image.linear_probe", "params": {"C": 1.0}})


def digits(n: int, offset: int = 0) -> list[tuple[str, bytes]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for i in range(offset, offset + n):
        buf = io.BytesIO()
        Image.fromarray((255 - d.images[i] * 255 / 16).astype(np.uint8)).resize((64, 64)).save(buf, "PNG")
        out.append((f"digit-{d.target[i]}", buf.getvalue()))
    return out


def run(items, spec, blobs, cache: Path, work: Path):
    """(seconds, run result, images embedded by this run: the most of any feature kind)."""
    fx = FeatureExtractor(cache)
    t = time.perf_counter()
    out = train(items, spec, load_image=blobs.get, extractor=fx, work_dir=work)
    return time.perf_counter() - t, out.result, max(fx.computed.values(), default=0)


def _split(seconds: float, result: dict) -> str:
    """Where a run's time went, largest stage first, in words."""
    t = {k: v for k, v in result["timings"].items() if k != "total"}
    top = sorted(t, key=t.get, reverse=True)[:2]
    return (f"{seconds:.2f} s, of which {top[0]} {t[top[0]]:.2f} s and {top[1]} {t[top[1]]:.2f} s; "
            f"model chosen: {result['chosen']['learner']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    n, added, budget = (60, 5, 10.0) if args.quick else (500, 10, 60.0)
    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    blobs = FileBlobStore(root / "blobs")
    items = [VersionItem(i + 1, blobs.put(b), lab) for i, (lab, b) in enumerate(digits(n))]
    t = time.perf_counter()
    export_backbone(root / "cache")
    export_s = time.perf_counter() - t

    rows = []
    cold_s, cold, _ = run(items, TrainingSpec(1, candidates=LINEAR), blobs, root / "cache", root / "w1")
    rows.append(["cold, 3 linear candidates", n, f"{cold_s:.2f}", cold["timings"], cold["chosen"]["learner"]])
    more = items + [VersionItem(n + i + 1, blobs.put(b), lab) for i, (lab, b) in enumerate(digits(added, offset=n))]
    reuse_spec = TrainingSpec(2, mode="reuse", candidates=(cold["chosen"],))
    inc_s, inc, inc_embedded = run(more, reuse_spec, blobs, root / "cache", root / "w2")
    rows.append([f"incremental (+{added} images), quick reuse", len(more), f"{inc_s:.2f}", inc["timings"],
                 inc["chosen"]["learner"]])
    full_s, full, _ = run(more, TrainingSpec(3, time_budget_s=budget), blobs, root / "cache", root / "w3")
    sel = full["selection"]
    rows.append([f"full selection, budget {budget:.0f} s", len(more), f"{full_s:.2f}", full["timings"],
                 f"{full['chosen']['learner']} ({len(sel['scores'])}/{sel['n_candidates']} candidates, "
                 f"cut_at={sel['cut_at']})"])

    printable = [[r[0], r[1], r[2], ", ".join(f"{k} {v:.2f}" for k, v in r[3].items() if k != "total"), r[4]]
                 for r in rows]
    body = table(["run", "images", "total s", "stages (s)", "chosen"], printable)
    body += (f"\n\nBackbone export to ONNX (once per data dir, not in the figures above): {export_s:.2f} s.  "
             f"\nIncremental quick retrain vs cold: {inc_s / cold_s:.2f}× the time "
             f"(it embedded {inc_embedded} images for {added} new ones; it tried "
             f"{len(inc['selection']['scores']) if inc.get('selection') else 1} candidate(s)).  "
             f"\nGoals: incremental < 2 s ({'met' if inc_s < 2 else 'NOT met'}), cold {n} linear < 10 s "
             f"({'met' if cold_s < 10 else 'NOT met'}), full selection within budget "
             f"(selection took {full['timings']['selection']:.1f} s of {budget:.0f} s: "
             f"{'met' if full['timings']['selection'] <= budget * 1.1 else 'NOT met'}).  "
             f"\nGoals of issue 15: cold {n} linear < 5 s ({'met' if cold_s < 5 else 'NOT met'}: "
             f"{_split(cold_s, cold)}), incremental < 1 s ({'met' if inc_s < 1 else 'NOT met'}: {_split(inc_s, inc)}).")
    print(body)
    write_section("training_time", "Time to train per stage (issue 3)", body, quick=args.quick)


if __name__ == "__main__":
    main()
