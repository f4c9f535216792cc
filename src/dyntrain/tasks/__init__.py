"""Tasks as plug-ins: the one seam every kind of problem goes through.

A task is an input *modality* (what a sample is: an image, a text, a table row, …) combined
with a *target* (what is predicted: a class, a number, …). The modality owns decoding and
validating uploads, the model's input contract, feature kinds and candidate learners; the
target owns the label format, the trainability check, metrics and their words, the baseline,
the gate rule, decoding model outputs and the UI partials that show them. Everything outside
this package asks ``tasks.get(project.task)`` instead of branching on a task's name.

>>> get("tabular-regression").target.name, get("tabular-regression").modality.kind
('number', 'row')
>>> register(Task("image-classification", get("image-classification").modality, get("image-classification").target))
Traceback (most recent call last):
...
ValueError: task 'image-classification' is already registered
"""

from __future__ import annotations

from .base import Modality, Target, Task

__all__ = ["Modality", "Target", "Task", "DEFAULT", "register", "unregister", "get", "names", "default_for"]

#: The task a project gets when its creator names none.
DEFAULT = "image-classification"

_TASKS: dict[str, Task] = {}
#: The task a client's data format implies when the project does not exist yet (the CLI's import).
_DEFAULTS: dict[str, str] = {}


def register(task: Task, *, default_for_format: bool = False) -> Task:
    """Add a task; ``default_for_format`` makes it the one a new project gets for its modality's
    upload format (e.g. a folder of images) when no task is named."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    if default_for_format:
        _DEFAULTS.setdefault(task.modality.upload_format, task.name)
    return task


def unregister(name: str) -> None:
    """Remove a task (tests register toy tasks and take them away again)."""
    task = _TASKS.pop(name)
    if _DEFAULTS.get(task.modality.upload_format) == name:
        del _DEFAULTS[task.modality.upload_format]


def get(name: str | None) -> Task:
    """The registered task ``name``; :class:`~dyntrain.kernel.errors.Invalid` names the supported ones."""
    try:
        return _TASKS[name or ""]
    except KeyError:
        from ..kernel.errors import Invalid

        raise Invalid(f"unknown task {name!r}; supported: {', '.join(_TASKS)}") from None


def names() -> list[str]:
    """Every registered task's name, in registration order."""
    return list(_TASKS)


def default_for(upload_format: str) -> str | None:
    """The default task for data in ``upload_format`` ("files", "texts", "rows")."""
    return _DEFAULTS.get(upload_format)


def blob_holders() -> list[str]:
    """The tasks whose annotations name blobs (a mask's PNG): housekeeping, backups and purges
    look into those projects' annotations, no others."""
    return [n for n, t in _TASKS.items() if type(t.target).blob_refs is not Target.blob_refs]


def annotation_blobs(rows) -> set[str]:
    """The blobs named by annotations, given as ``(task, annotation)`` rows (an annotation as
    stored: a JSON value, or its text from a raw database read)."""
    import json

    out: set[str] = set()
    for task, annotation in rows:
        if annotation is None or task not in _TASKS:
            continue
        out.update(_TASKS[task].target.blob_refs(json.loads(annotation) if isinstance(annotation, str)
                                                 else annotation))
    return out


def file_keepers() -> list[str]:
    """The tasks whose prediction records keep files (a predicted mask's PNG; see
    ``Target.output_files``): housekeeping, backups and purges look into those records' outputs."""
    return [n for n, t in _TASKS.items() if t.target.output_files]


def output_blobs(rows) -> set[str]:
    """The blobs prediction records keep, given as ``(task, output)`` rows (an output as stored:
    a JSON object, or its text from a raw database read)."""
    import json

    out: set[str] = set()
    for task, output in rows:
        if output is None or task not in _TASKS or not _TASKS[task].target.output_files:
            continue
        files = (json.loads(output) if isinstance(output, str) else output).get("files") or {}
        out.update(h for k, h in files.items() if k in _TASKS[task].target.output_files and isinstance(h, str))
    return out


from . import builtin  # noqa: E402,F401  (registers the built-in tasks)
