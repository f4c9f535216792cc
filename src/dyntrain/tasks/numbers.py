"""The number target: a value per sample (regression); the model answers ``value``.

A label is the number as canonical text ("151", "0.25", see :func:`dyntrain.codecs.tables.target_text`),
so a dataset version stays exact (content hash, label) pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Answer, Target

__all__ = ["NumberTarget"]


class NumberTarget(Target):
    name = "number"
    contract = "regressor"
    has_classes = False
    output = "value"
    gate_metrics = ("r2", "mae")
    headline = "r2"
    run_template = "_run_regression.html"
    goal = "predict a number"

    def validate_label(self, label: Any) -> str:
        from ..codecs.tables import target_text

        return target_text(label)

    def training_stages(self):
        from ..training.numbers import NUMBER_STAGES

        return NUMBER_STAGES

    def label_from_cell(self, value: Any, column: str) -> str:
        return self.validate_label(value)

    def counts(self, labels: list[str]) -> dict[str, int]:
        # rows per target range: the scheduler reads these like class counts
        from ..codecs.tables import target_histogram

        return target_histogram(labels)

    def check_trainable(self, counts: dict[str, int]) -> None:
        from ..kernel.errors import Invalid

        rows = sum(counts.values())
        if rows < 4:
            raise Invalid(f"training needs at least 4 rows with a target; this dataset has {rows}. Add rows.")
        if len([c for c in counts.values() if c > 0]) < 2:
            raise Invalid(f"every row has about the same target ({', '.join(counts)}): add rows with other "
                          "values, or there is nothing to predict")

    def problem(self, label_counts: dict[str, int]) -> str | None:
        # plainer words than the histogram's while the rows are few or all alike
        n = sum(label_counts.values())
        if n < 4:
            return f"training needs at least 4 rows; there {'is' if n == 1 else 'are'} {n}"
        if len(label_counts) < 2:
            return f"every row has the same target ({next(iter(label_counts))}): add rows with other values"
        return super().problem(label_counts)

    # -- gate ------------------------------------------------------------------------------
    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        return self._scores(samples, np.asarray(output).reshape(-1))

    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        return self._scores(samples, [p["predicted"] for p in samples])

    def _scores(self, samples: list[dict], predicted) -> dict[str, Any]:
        from ..learners.metrics import regression_metrics

        m = regression_metrics([float(p["true"]) for p in samples], np.asarray(predicted, np.float64), max_points=0)
        return {k: m[k] for k in ("r2", "mae", "rmse", "n_samples") if k in m}

    def served_note(self, samples: list[dict], predictions: list[dict], served_labels: list[str]) -> str | None:
        if len({p["true"] for p in samples}) < 2:
            return "the never-seen rows all have the same target, so R² says nothing"
        return None

    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        from ..registry.gate import fmt

        if floor is None:
            return True, f"first model: {metric} {fmt(score)}"
        floor = float(floor)
        if (score > floor) if metric == "r2" else (score < floor):
            return True, f"first model: {metric} {fmt(score)} beats always predicting the average ({fmt(floor)})"
        return False, (f"{metric} {fmt(score)} is no better than always predicting the average ({fmt(floor)}); "
                       "add more rows or more informative columns")

    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        from ..registry.gate import fmt

        score, before, tol = float(new[metric]), float(old[metric]), settings.gate_tolerance
        if metric == "mae":  # an error: relative to the current one
            if score > before * (1 + tol):
                return f"mae would rise from {fmt(before)} to {fmt(score)} (more than the allowed {tol:.1%})"
            return None
        return self.dropped(new, old, metric, tol)

    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        from ..registry.gate import score_text

        return (f"The model in service had R² {score_text(old.get('r2'))} (mean error {score_text(old.get('mae'))}) "
                f"on {n} rows it had never seen; the new one R² {score_text(new.get('r2'))} (mean error "
                f"{score_text(new.get('mae'))}): {outcome}.")

    def show_score(self, x: float | None) -> str:
        from ..registry.gate import score_text

        return score_text(x)

    def estimate_words(self) -> tuple[str, str]:
        return "R² ", "rows"

    # -- predictions -----------------------------------------------------------------------
    def answer(self, output, labels: tuple[str, ...], threshold: float) -> Answer:
        return Answer({"value": float(output[0])})  # a number: no class, scores or confidence

    def cli_columns(self) -> list[str]:
        return ["value", "model"]

    def cli_cells(self, prediction: dict) -> list[str]:
        return [f"{prediction['value']:.6g}", f"v{prediction['model_version']}"]
