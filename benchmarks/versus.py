"""Training time side by side with an earlier commit, in one run (issue 14: the task seam must not
make training slower).

    python benchmarks/versus.py [--against REV] [--rounds N] [--quick]

Checks REV out into a temporary git worktree and runs each tree's own
``benchmarks/training_time.py`` in alternation (this tree, REV, this tree, …), each in a fresh
process with its own source on ``sys.path``, so both see the same machine load. Reported: the
median of each tree's cold training and incremental quick retrain, and their ratio (this tree ÷
REV; below 1 is faster). The earlier tree's copy of RESULTS.md is thrown away with its worktree.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The last commit before the task seam (issue 14).
BEFORE_SEAM = "7d113f1"
# | run | images | total s | stages | chosen |
ROW = re.compile(r"^\| (cold|incremental)[^|]*\| (\d+) \| ([\d.]+) \| [^|]*\| ([^|]+?) \|", re.M)


def run_tree(tree: Path, quick: bool) -> dict[str, float | str]:
    """Cold and incremental seconds of one run of ``tree``'s training_time benchmark, and the
    model its cold run chose (``chosen``)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, str(tree / "benchmarks" / "training_time.py"), *(["--quick"] if quick else [])],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: training_time.py failed:\n{out.stderr[-2000:]}")
    rows = ROW.findall(out.stdout)
    found: dict[str, float | str] = {kind: float(seconds) for kind, _, seconds, _ in rows}
    if set(found) != {"cold", "incremental"}:
        raise RuntimeError(f"{tree}: no cold/incremental rows in its output:\n{out.stdout[-2000:]}")
    found["chosen"] = next(chosen for kind, _, _, chosen in rows if kind == "cold")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default=BEFORE_SEAM, help="the earlier commit (default: before the task seam)")
    parser.add_argument("--rounds", type=int, default=None, help="runs of each tree (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round, for CI")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", "-q", f"{args.against}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:  # a shallow clone (CI's may be) does not hold it: nothing to compare with
        print(f"{args.against} is not in this clone (shallow?): nothing to compare with; fetch it to run this")
        if args.quick:
            return
        raise SystemExit(1)
    rev = found.stdout.strip()
    here = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-versus-") as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), rev], check=True)
        try:
            runs: dict[str, list[dict[str, float]]] = {"this": [], "earlier": []}
            for _ in range(rounds):
                runs["this"].append(run_tree(ROOT, args.quick))
                runs["earlier"].append(run_tree(other, args.quick))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)
    median = {tree: {k: statistics.median(r[k] for r in rs) for k in ("cold", "incremental")} for tree, rs in runs.items()}
    rows = [[kind, f"{median['earlier'][kind]:.2f}", f"{median['this'][kind]:.2f}",
             f"{median['this'][kind] / median['earlier'][kind]:.2f}"] for kind in ("cold", "incremental")]
    body = table(["training_time.py run", f"{rev} (s)", f"this tree {here} (s)", "ratio"], rows)
    worst = max(median["this"][k] / median["earlier"][k] for k in ("cold", "incremental"))
    verdict = ("not slower (within 10%)" if worst <= 1.10 else f"SLOWER: up to {worst:.2f}× the time of {rev}")
    chosen = {tree: sorted({str(r["chosen"]) for r in rs}) for tree, rs in runs.items()}
    body += (f"\n\nMedians of {rounds} alternating run(s) of each tree's own `benchmarks/training_time.py`"
             f"{' --quick' if args.quick else ''}. Verdict: this tree is {verdict}. "
             + why_different(chosen, rev))
    print(body)
    write_section("versus", f"Training time side by side with {rev} (issue 14)", body, quick=args.quick)


def why_different(chosen: dict[str, list[str]], rev: str) -> str:
    """Whether the two trees trained the same kind of model on the same images: a tree that
    chooses a richer model (a soft vote of several) pays for it in every fit that follows.

    >>> why_different({"this": ["a"], "earlier": ["a"]}, "r")
    'Both trees chose the same model on the same images (a), so the ratio is the code alone.'
    """
    this, earlier = ", ".join(chosen["this"]), ", ".join(chosen["earlier"])
    if this == earlier:
        return f"Both trees chose the same model on the same images ({this}), so the ratio is the code alone."
    return (f"The trees chose different models on the same images ({rev}: {earlier}; this tree: {this}): the "
            "incremental run refits and re-scores the chosen model, so its ratio is mostly the cost of that choice.")


if __name__ == "__main__":
    main()
