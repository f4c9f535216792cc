"""The class target: one label out of a project's classes; the model answers probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Answer, Target

__all__ = ["ClassTarget"]


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"


class ClassTarget(Target):
    name = "class"
    contract = "classifier"
    has_classes = True
    thresholded = True
    output = "probabilities"
    gate_metrics = ("macro_f1", "accuracy")
    headline = "accuracy"
    goal = "recognise which class each one belongs to"

    def validate_label(self, label: Any) -> str:
        from ..codecs.archive import validate_label

        return validate_label(label)

    def training_stages(self):
        from ..training.classes import CLASS_STAGES

        return CLASS_STAGES

    def label_from_cell(self, value: Any, column: str) -> str:
        from ..codecs.tables import class_text

        return class_text(value, column)

    def counts(self, labels: list[str]) -> dict[str, int]:
        from collections import Counter

        return dict(sorted(Counter(labels).items()))

    def waiting(self, counts: dict[str, int]) -> dict[str, int]:
        from ..datasets.versions import waiting_classes

        return waiting_classes(counts)

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..datasets.versions import MIN_EXAMPLES_PER_CLASS, waiting_sentence
        from ..kernel.errors import Invalid

        if len([c for c in counts.values() if c > 0]) < 2:
            raise Invalid(f"training needs at least 2 classes with examples; this dataset has "
                          f"{len(counts)} ({', '.join(counts) or 'none'}). Add examples of another class.")
        # A class still too small only waits (training leaves it out) while two others can be learnt.
        waiting = self.waiting(counts)
        if len(counts) - len(waiting) < 2:
            raise Invalid(f"every class needs at least {MIN_EXAMPLES_PER_CLASS} examples, and training needs 2 "
                          "such classes: "
                          f"{'; '.join(waiting_sentence(label, c) for label, c in waiting.items())}.")

    # -- gate ------------------------------------------------------------------------------
    def comparable(self, unseen: list[dict], served_labels: list[str]) -> list[dict]:
        known = set(served_labels)  # a class the served model does not know cannot be scored
        return [p for p in unseen if p["true"] in known]

    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        return self._scores(samples, [served_labels[int(k)] for k in np.asarray(output).argmax(axis=1)])

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        return self._scores(samples, [p["predicted"] for p in samples])

    def _scores(self, samples: list[dict], said: list[str]) -> dict[str, Any]:
        from ..learners.metrics import classification_metrics

        labels = sorted({p["true"] for p in samples} | set(said))
        index = {label: k for k, label in enumerate(labels)}
        onehot = np.eye(len(labels))[[index[s] for s in said]]  # only the chosen class counts here
        m = classification_metrics([index[p["true"]] for p in samples], onehot, labels)
        m["per_class"] = {k: v for k, v in m["per_class"].items() if v["support"]}
        # labels and confusion matrix: the run page says which classes each model tells apart better
        return {k: m[k] for k in ("accuracy", "macro_f1", "per_class", "n_samples", "labels", "confusion_matrix")
                if k in m}

    def served_note(self, samples: list[dict], predictions: list[dict], served_labels: list[str]) -> str | None:
        known = set(served_labels)
        missing = sorted({p["true"] for p in predictions if p["true"] in known} - {p["true"] for p in samples})
        return f"no evaluation example it never trained on for: {', '.join(missing)}" if missing else None

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        floor = float(floor or 0.0)
        if score > floor:
            return True, f"first model: {metric} {score:.3f} beats always guessing the largest class ({floor:.3f})"
        return False, (f"{metric} {score:.3f} is no better than always guessing the largest class ({floor:.3f}); "
                       "add more or clearer examples")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        return (self.dropped(new, old, metric, settings.gate_tolerance)
                or self.class_drops(new, old, "recall", "support", settings.gate_class_recall_tolerance, min_support,
                                    "recall"))

    def promoted_tail(self) -> list[str]:
        return ["no class got worse beyond tolerance"]

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        return (f"The model in service was right {_pct(old.get('accuracy'))} of the time on {n} examples it had "
                f"never seen; the new one {_pct(new.get('accuracy'))}: {outcome}.")

    def show_score(self, x: float | None) -> str:
        return _pct(x)

    def estimate_words(self) -> tuple[str, str]:
        """(what precedes a score, what the examples are called) in the estimate sentence."""
        return "", "examples"

    # -- predictions -----------------------------------------------------------------------
    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        best = int(np.argmax(output))
        confidence = float(output[best])
        label = labels[best] if confidence >= threshold else None  # below the threshold: "not sure"
        scores = {lab: float(v) for lab, v in zip(labels, output)}
        return Answer({"label": label, "confidence": confidence, "scores": scores}, label, confidence)

    def cli_columns(self) -> list[str]:
        return ["label", "confidence", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        return [prediction["label"] or "(none of these)", f"{prediction['confidence']:.3f}",
                f"v{prediction['model_version']}"]
