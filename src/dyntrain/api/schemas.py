"""API schemas (``*Create`` / ``*Patch`` / ``*Public``), kept apart from entities and rows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .. import tasks


__all__ = [
    "ProjectCreate", "ProjectPatch", "ProjectPublic", "SamplePublic", "SamplesPage", "SamplePatch",
    "ClassCreate", "ClassPatch", "ClassPublic", "BatchPublic", "VersionPublic", "ChangeResult",
    "JobPublic", "TrainAccepted", "public", "Text", "JsonObject",
]


def unicode_text(value: Any, where: str = "") -> Any:
    """``value`` unchanged if every string in it is valid Unicode text.

    JSON may carry a lone surrogate ("\\ud800"), which UTF-8 cannot encode: refused here, as a
    422 naming the field (and the column of a row), instead of failing later as a 500.

    >>> unicode_text({"a": "ok"})
    {'a': 'ok'}
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where or 'the text'} holds a lone surrogate ({value[exc.start]!r}) at character "
                             f"{exc.start + 1}, which is not valid Unicode; send the text as valid UTF-8") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            unicode_text(key, "a column name")
            unicode_text(item, f"column {key!r}")
    elif isinstance(value, list):
        for item in value:
            unicode_text(item, where)
    return value


Text = Annotated[str, AfterValidator(unicode_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(unicode_text)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(..., examples=["products"], description="Unique; letters, digits, '-', '_', '.'.")
    task: Text = Field(tasks.DEFAULT, description="What the project predicts (an unknown name is refused with the list of tasks).")
    description: Text = ""
    settings: JsonObject = Field(default_factory=dict, description="See GET /api/v1/settings-schema.")


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Text | None = None
    settings: JsonObject | None = Field(None, description="Merged into the current settings.")


class ProjectPublic(_Out):
    name: str
    task: str
    description: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status: dict[str, Any] | None = None


class SamplePublic(_Out):
    id: int
    kind: str
    content_hash: str
    label: str
    source: str
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    annotation: Any = Field(None, description="The whole label where `label` does not say everything "
                            "(an image's boxes, a mask), in the task's format; null for classes and numbers.")


class SamplesPage(BaseModel):
    items: list[SamplePublic]
    total: int
    offset: int
    limit: int


class SamplePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Text | list[dict[str, Any]] | dict[str, Any] = Field(
        ..., description="The new label in the task's format: a class, a number, or for structured "
        "targets their annotation (e.g. a list of boxes).")


class ClassCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Text
    description: Text = ""


class ClassPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Text | None = Field(None, description="New name; relabels every sample of the class in one version.")
    description: Text | None = None


class ClassPublic(_Out):
    label: str
    description: str
    count: int
    waiting: str | None = Field(None, description="Set while the class has too few examples to learn: training "
                                "leaves it out and says what it needs (\"'mug' needs 1 more example ...\").")


class BatchPublic(BaseModel):
    id: str


class VersionPublic(_Out):
    number: int
    parent: int | None
    hash: str
    counts: dict[str, int]
    size: int
    message: str
    created_at: datetime
    purged: int = 0  # items purged since (privacy); hash, counts and size describe the version as made


class ChangeResult(BaseModel):
    """What a data change did: the samples it touched and the dataset version it made (if any)."""

    samples: list[SamplePublic] = []
    version: VersionPublic | None = None


class JobPublic(_Out):
    id: int
    status: str
    trigger: str
    dataset_version: int | None
    run_at: datetime
    attempt: int
    max_attempts: int
    cancel_requested: bool
    progress: dict[str, Any]
    run_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainAccepted(BaseModel):
    job_id: int
    status: str
    run_id: int | None


def public(schema: type[BaseModel], entity: Any, **extra: Any) -> BaseModel:
    """Entity (frozen dataclass) → API schema."""
    return schema.model_validate({**asdict(entity), **extra})
