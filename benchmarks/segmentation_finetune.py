"""Would a fine-tuned segmentation candidate fit the budget? (issue 17: "fine-tuned last blocks where
the budget allows")

    python benchmarks/segmentation_finetune.py

Measures the training cost of one sample-step (forward, backward, AdamW step; batch 8, 320 px, four
classes) on this machine, one torch thread as the segmentation trainer runs
(``segmentation.TORCH_THREADS``):

* the shipped decoder on cached frozen maps, by the trainer's own planner
  (``segmentation_nets.seconds_per_sample``, mean of strides 8 and 4);
* the decoder with Lite0's last block(s) trained too, fed the cached activation entering the first
  trained block (what a fine-tuned candidate would cache): block 15 alone, the stride-32 stage
  (blocks 11-15), the stride-16 and -32 stages (blocks 5-15). Their extra cost over the decoder
  alone (the same full-resolution loss in both) is added to the trainer's step.

Each arm is timed twice, interleaved (the machine is shared), as the median of 10 steps after a
warm-up; the smaller of the two is kept. A fit is ``segmenter.PASSES`` sample-steps; a candidate
costs three fits' worth in a run (three cross-validation folds, each on two thirds of the photos,
as ``training.masks`` plans them, and the final fit if chosen). The verdict adds that to the two
decoder candidates' five (their folds and one final fit) and compares with the project's default
time budget (``benchmarks/segmentation.py``: selection 46 s of a 54 s run at 20 photos).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import table, write_section  # noqa: E402

BATCH, SIZE, CLASSES, STEPS, REPEATS = 8, 320, 4, 10, 2
TAILS = {"block 15": 15, "blocks 11-15 (stride-32 stage)": 11, "blocks 5-15 (stride-16 and -32 stages)": 5}
FITS = 3  # three folds on two thirds of the photos each, and the final fit
DECODERS = 5  # the two decoder candidates' folds (two fits' worth each) and one final fit


def main() -> None:
    import torch
    import torch.nn.functional as F

    from dyntrain.kernel.project_settings import ProjectSettings
    from dyntrain.learners import _nets, feature_maps as fm
    from dyntrain.learners.segmentation import TORCH_THREADS
    from dyntrain.learners.segmentation_nets import Decoder, seconds_per_sample
    from dyntrain.learners.segmenter import PASSES

    torch.set_num_threads(TORCH_THREADS)
    maps_net = fm.torch_module(_nets.load_lite0()).eval()
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (BATCH, SIZE, SIZE, 3), dtype=np.uint8))
    acts: dict = {}
    with torch.no_grad():  # the activations a run would cache: each block's input, and the four maps
        x = maps_net.stem(maps_net.normalize(image))
        for i, block in enumerate(maps_net.blocks):
            acts[i] = x
            x = block(x)
            if i in maps_net.taps:
                acts[maps_net.taps[i]] = x
    maps = [acts[k].contiguous() for k in fm.OUTPUTS]
    target = torch.from_numpy(np.random.default_rng(1).integers(0, CLASSES, (BATCH, SIZE // 4, SIZE // 4)))

    def step_seconds(first: int | None) -> float:
        decoder = Decoder(CLASSES, stride=4)
        params = list(decoder.parameters())
        tail = None
        if first is not None:
            tail = copy.deepcopy(torch.nn.ModuleList(maps_net.blocks[first:])).train()
            params += list(tail.parameters())
        opt = torch.optim.AdamW(params, lr=1e-4)
        took = []
        for k in range(STEPS + 1):
            start = time.perf_counter()
            s4, s8, s16, s32 = maps
            if tail is not None:
                x = acts[first]
                for j, block in enumerate(tail):
                    x = block(x)
                    if first + j == fm.BLOCK_AT_STRIDE["s16"]:
                        s16 = x
                s32 = x
            loss = F.cross_entropy(decoder(s4, s8, s16, s32), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k:  # the first step is the warm-up
                took.append((time.perf_counter() - start) / BATCH)
        return float(np.median(took))

    arms = {"decoder": None, **TAILS}
    timed = {name: [] for name in arms}
    for _ in range(REPEATS):
        for name, first in arms.items():
            timed[name].append(step_seconds(first))
            print(name, f"{timed[name][-1] * 1000:.1f} ms", flush=True)
    features = [m.numpy() for m in maps]
    masks = np.random.default_rng(2).integers(0, CLASSES, (BATCH, SIZE, SIZE)).astype(np.uint8)
    shipped = min(float(np.mean([seconds_per_sample(features, masks, n_classes=CLASSES, stride=s, steps=6)
                                 for s in (8, 4)])) for _ in range(REPEATS))
    budget = ProjectSettings().time_budget_s
    base = min(timed["decoder"])
    rows, verdicts = [["shipped decoder (frozen maps)", f"{shipped * 1000:.1f}", "1.0",
                       f"{PASSES * shipped:.0f}", f"{FITS * PASSES * shipped:.0f}"]], []
    for name in TAILS:
        step = shipped + max(0.0, min(timed[name]) - base)
        need = FITS * PASSES * step
        rows.append([f"decoder + {name} trained", f"{step * 1000:.1f}", f"{step / shipped:.1f}",
                     f"{PASSES * step:.0f}", f"{need:.0f}"])
        verdicts.append((name, need))
    fitting = [n for n, need in verdicts if need + DECODERS * PASSES * shipped <= budget]
    body = (
        f"One torch thread (the trainer's), batch {BATCH}, {SIZE} px, {CLASSES} classes; a fit is "
        f"{PASSES} sample-steps (`segmenter.PASSES`); a candidate costs {FITS} fits' worth (3 folds on two thirds of "
        "the photos, and the final fit).\n\n"
        + table(["candidate", "ms per sample-step", "× the decoder", "s per fit", f"s for {FITS} fits"], rows)
        + f"\n\nThe default budget is {budget:.0f} s a run; the two decoder candidates (strides 8 and 4) take about "
        f"{DECODERS * PASSES * shipped:.0f} s of full fits at this rate (a run plans fewer epochs when the budget is "
        "short). "
        + ("No fine-tuned candidate fits beside them: "
           + "; ".join(f"{n} alone needs {need:.0f} s" for n, need in verdicts)
           + ". It is not offered." if not fitting else
           "Fits beside them: " + ", ".join(fitting) + ".")
    )
    write_section("segmentation_finetune", "Segmentation: the cost of a fine-tuned candidate (issue 17)", body)


if __name__ == "__main__":
    main()
