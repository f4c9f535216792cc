"""Per-project settings: one pydantic model gives defaults, validation and the documented schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import Invalid

__all__ = ["ProjectSettings", "merge_settings", "settings_schema", "gate_metrics", "check_webhook_destination"]

def gate_metrics(task: str) -> tuple[str, ...]:
    """The gate metrics that apply to a task (its target says); the first is its default.

    >>> gate_metrics("tabular-regression")
    ('r2', 'mae')
    """
    from .. import tasks

    return tasks.get(task).target.gate_metrics


class ProjectSettings(BaseModel):
    """What a project owner can tune. A PATCH merges into the stored values."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    auto_train: bool = Field(True, description="Retrain automatically after every change to the data.")
    train_delay_s: float = Field(5.0, ge=0, le=3600, description="Wait this long after the last change before training (each change restarts the wait).")
    train_max_delay_s: float = Field(60.0, ge=0, le=86400, description="Never wait longer than this after the first pending change, so a steady stream of edits still trains.")
    time_budget_s: float = Field(60.0, ge=1, le=86400, description="Time allowed for model selection in one run (cut only between candidates).")
    min_holdout_per_class: int = Field(10, ge=1, le=10000, description="Below this many holdout samples in any class, runs evaluate by repeated cross-validation instead of the holdout.")
    gate_metric: str = Field("macro_f1", description="The score a new model must not lose (by more than gate_tolerance) to replace the one in service: macro_f1 or accuracy for classification, r2 (the default) or mae for tabular-regression, map50_95 (the default) or map50 for object-detection projects, miou (the default) or pixel_accuracy for semantic-segmentation projects.")
    gate_tolerance: float = Field(0.01, ge=0, le=1, description="How much worse gate_metric may be and the new model still goes into service: absolute for macro_f1, accuracy and r2; a fraction of the current error for mae (0.01 = 1% higher).")
    gate_class_recall_tolerance: float = Field(0.05, ge=0, le=1, description="The largest drop in any single class's recall that still allows promotion.")
    confidence_threshold: float = Field(0.0, ge=0, le=1, description="Predictions less confident than this answer 'none of these' (label null). 0 turns it off.")
    store_prediction_inputs: bool = Field(True, description="Keep the input of every prediction (so it can be reviewed and added to training); off keeps only its hash.")
    prediction_retention_days: int = Field(90, ge=1, le=3650, description="Forget the stored input of predictions older than this many days (the prediction record stays; the file is deleted unless training data uses it).")
    prediction_record_retention_days: int | None = Field(None, ge=1, le=36500, description="Delete prediction records (and their stored inputs) older than this many days; null keeps them forever.")
    keep_model_versions: int = Field(10, ge=1, le=10000, description="Housekeeping keeps this many newest model versions, plus every version an alias points at (or could roll back to) and any a running training needs; older ones and their files are deleted.")
    webhook_url: str | None = Field(None, description="Receives finished / promoted / kept-back events (HMAC-signed).")
    seed: int = Field(0, ge=0, description="Random seed of training runs (holdout split is by content hash and does not depend on it).")
    augmentation: Literal["auto", "off", "light", "medium", "strong", "custom"] = Field("auto", description="Augmented copies of the training images: 'auto' lets cross-validation choose between none, light and medium while classes have up to 30 training examples on average (beyond, the gain is small and the cost large: none); a preset or 'custom' is the only one tried; 'off' never augments.")
    augmentation_custom: dict[str, float] | None = Field(None, description="Strength of each augmentation (translate, rotate, shear, scale, hflip, vflip, brightness, contrast, temperature, gaussian_noise, sensor_noise, blur, glare, moire) when augmentation is 'custom'.")
    augmentation_copies: int = Field(2, ge=0, le=10, description="Augmented copies per training image in an augmentation candidate.")
    balance_target_ratio: float = Field(1.0, gt=0, le=1, description="When classes are imbalanced, the balancing candidate brings every class up to this fraction of the largest with augmented copies (class weights are tried too).")
    learners: list[str] | None = Field(None, description="Learners model selection may try (e.g. [\"image.linear_probe\"]); null = all registered ones.")
    class_colors: dict[str, list[int]] | None = Field(None, description="Semantic segmentation: each class's colour in masks, {\"cup\": [r, g, b]} (0..255). A new class is given the next free colour of the Pascal VOC map when it first appears, so a class keeps its colour as others are added; change one here or on the data page.")
    gpu: bool = Field(False, description="Train this project's jobs on a GPU worker (Ray executor: the task asks for num_gpus=1 and fails with a clear reason if no node has one).")

    @field_validator("gate_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        from .. import tasks

        known = list(dict.fromkeys(m for n in tasks.names() for m in tasks.get(n).target.gate_metrics))
        if value not in known:
            raise ValueError(f"{value!r} is not a gate metric; choose one of {', '.join(known)}")
        return value

    @field_validator("learners")
    @classmethod
    def _known_learners(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from ..learners import names

        unknown = sorted(set(value) - set(names()))
        if unknown or not value:
            raise ValueError(f"unknown learner(s) {unknown}; choose from {names()}" if unknown
                             else "give at least one learner, or null for all")
        return value

    @field_validator("class_colors")
    @classmethod
    def _distinct_colors(cls, value: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        if value is None:
            return None
        from ..codecs.masks import check_class_table

        # the table's own checks: [r, g, b] in 0..255, no two classes alike, not the unlabelled colour
        check_class_table(list(value), value)
        return {k: [int(x) for x in v] for k, v in value.items()}

    @field_validator("augmentation_custom")
    @classmethod
    def _augment_config(cls, value: dict | None) -> dict | None:
        if value is not None:
            from ..datasets.augment import AugmentConfig

            AugmentConfig.from_dict(value)  # raises Invalid naming the bad key or value
        return value

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None


def merge_settings(current: dict[str, Any], patch: dict[str, Any], *, task: str | None = None) -> dict[str, Any]:
    """Validate ``patch`` on top of ``current``; unknown keys or bad values raise :class:`Invalid`.

    With ``task``, ``gate_metric`` must suit it (a regression project scores R² or MAE, not
    macro-F1) and defaults to the task's first metric.

    >>> merge_settings({}, {"train_delay_s": 2})["train_delay_s"]
    2.0
    >>> merge_settings({}, {}, task="tabular-regression")["gate_metric"]
    'r2'
    """
    values = {**current, **patch}
    if task is not None and "gate_metric" not in values:
        values["gate_metric"] = gate_metrics(task)[0]
    try:
        merged = ProjectSettings(**values)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in err["loc"]), "reason": err["msg"]} for err in exc.errors()]
        raise Invalid("invalid project settings: " + "; ".join(f"{d['field']}: {d['reason']}" for d in details),
                      details=details) from None
    if task is not None and merged.gate_metric not in gate_metrics(task):
        reason = (f"{merged.gate_metric!r} does not apply to a {task} project; choose "
                  + " or ".join(repr(m) for m in gate_metrics(task)))
        raise Invalid(f"invalid project settings: gate_metric: {reason}",
                      details=[{"field": "gate_metric", "reason": reason}])
    return merged.model_dump()


def check_webhook_destination(patch: dict[str, Any] | None, allow_private: bool) -> None:
    """:class:`Invalid` (HTTP 422) when ``patch`` sets a ``webhook_url`` that may not receive
    webhooks (not a public address, unresolvable): refused when it is saved, not only later
    when a delivery is skipped. Call it outside a database transaction (it resolves DNS)."""
    url = (patch or {}).get("webhook_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return  # empty, or a wrong type/scheme that merge_settings names
    from ..ops.webhooks import check_destination

    reason = check_destination(url, allow_private)
    if reason:
        raise Invalid(f"invalid project settings: webhook_url: {reason}",
                      details=[{"field": "webhook_url", "reason": reason}])


def settings_schema() -> list[dict[str, Any]]:
    """Every setting with its default, type and meaning (served at /api/v1/settings-schema)."""
    schema = ProjectSettings.model_json_schema()["properties"]
    return [
        {"name": name, "default": field.default, "description": field.description,
         "type": schema[name].get("type") or [a.get("type") for a in schema[name].get("anyOf", [])],
         **({"enum": schema[name]["enum"]} if "enum" in schema[name] else {})}
        for name, field in ProjectSettings.model_fields.items()
    ]
