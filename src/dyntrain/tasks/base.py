"""What a task plug-in provides: a :class:`Modality` (the input) and a :class:`Target` (the output).

The base classes hold the behaviour most plug-ins share; a plug-in overrides what differs.
"""

from __future__ import annotations

import abc

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Modality", "Target", "Task", "Answer"]


class Modality(abc.ABC):
    """What a sample is, and how it reaches a model."""

    #: The stored sample kind and the content codec's name ("image", "text", "row").
    kind: str = ""
    #: One sample in words ("image", "text", "row").
    noun: str = "item"
    #: How clients send samples and predictions: "files" (multipart), "texts" or "rows" (JSON).
    upload_format: str = "files"
    #: Augmented copies can be made of samples (training's data recipes).
    augmentable: bool = False
    #: The data-health checks (near duplicates, blur, …) apply.
    health_checks: bool = False
    #: The UI partials: the data view, how data is added and what the page says to do with it,
    #: the try form, and the scripts the data and try pages load.
    data_template: str = "_data_cards.html"
    add_template: str = "_add_class.html"
    help_template: str = ""
    data_scripts: tuple[str, ...] = ()
    try_template: str = "_try_files.html"
    try_script: str = "try.js"
    #: Runs of this modality's learners record training curves worth a chart.
    training_curves: bool = True
    #: The project page shows samples as text (a text or a row preview), not thumbnails.
    shows_text: bool = False
    #: Dataset versions freeze the project's samples (datasets.versions.snapshot); False for examples
    #: kept and versioned elsewhere (interactions: datasets.interactions).
    sample_versions: bool = True
    #: Samples in the plural, for counts in the UI ("40 rows").
    plural: str = "examples"
    #: What the examples are, as the new-project form offers it ("Photos"); see :attr:`Task.title`.
    title: str = ""

    def upload_limit(self, settings) -> tuple[int, str, str]:
        """(most items per request, the setting that says so, what they are called)."""
        return settings.max_files_per_request, "max_files_per_request", "files"

    def canonical(self, data: bytes) -> bytes:
        """The stored bytes of an upload (its content hash is theirs): as sent, unless overridden."""
        return data

    @abc.abstractmethod
    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        """Validate one upload; return what is kept about it (raises Invalid/TooLarge)."""

    @abc.abstractmethod
    def decode(self, data: bytes, *, max_pixels: int = 40_000_000) -> Any:
        """One stored content as the model family takes it (the serving and training decoder)."""

    def media_type(self, data: bytes) -> str:
        """The HTTP media type of a stored content."""
        return "application/octet-stream"

    def columns(self, session) -> tuple | None:
        """The named columns a loaded model takes (a table model's), or None."""
        return None

    @abc.abstractmethod
    def feed(self, input_names: list[str], columns: tuple | None, items: list) -> dict[str, Any]:
        """The ONNX Runtime feed for decoded items (see :meth:`decode`)."""

    def item_problems(self, columns: tuple | None, index: int, item: Any) -> list[dict[str, Any]]:
        """What makes a decoded prediction input unfit for the whole request (e.g. a row's unknown
        columns); a bad value of one item raises instead (that item's own error)."""
        return []

    @abc.abstractmethod
    def example(self) -> bytes:
        """A valid small upload: probes a model uploaded from elsewhere."""

    def warmup_item(self) -> Any:
        """A decoded dummy item that warms a freshly loaded model."""
        return self.decode(self.example())

    def external_input(self, model, task: str) -> str:
        """Check an uploaded ONNX graph's input; return the name serving feeds it under."""
        from ..kernel.errors import Invalid

        raise Invalid(f"uploading models trained elsewhere is not supported for {task} projects yet")

    @abc.abstractmethod
    def candidates(self, target: "Target", n_samples: int, n_classes: int, time_budget_s: float) -> list:
        """The cheap-first learner candidates for this modality and target's learner contract."""

    @abc.abstractmethod
    def features(self, kinds: list[str], hashes: list[str], load_blob: Callable[[str], bytes], extractor,
                 progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Features of each kind for the contents ``hashes``."""

    @abc.abstractmethod
    def input_contract(self, onnx_path: Path) -> dict[str, Any]:
        """What a trained model file takes, for its card."""

    # -- what the job glue asks of a version and of the model in service ------------------------
    def version_data(self, session, project, number: int):
        """A dataset version's training data as the run takes it: its items (samples) by default;
        a modality whose examples are not samples loads its own (interactions up to a watermark)."""
        from ..datasets.versions import version_items

        return version_items(session, project, number)

    def trained_contents(self, session, project, card: dict[str, Any], run):
        """The evaluation keys (``content_hash`` of the run's predictions) the model in service,
        made by ``run`` from its card's dataset version, trained on: the gate scores it only on the
        others. Any container answering ``in``."""
        from ..datasets.versions import version_items

        trained = {i.content_hash for i in version_items(session, project, card["dataset_version"])}
        if card.get("evaluation") == "holdout" and run is not None:
            # its final fit left its holdout out: those contents are as unseen as new ones
            trained -= {p["content_hash"] for p in ((run.result or {}).get("metrics") or {}).get("predictions", [])}
        return trained

    def served_input(self, prediction: dict[str, Any], load_blob: Callable[[str], bytes]) -> Any:
        """What the model in service is given for one of the run's evaluation predictions (the gate
        runs its file on it): the stored content, decoded."""
        return self.decode(load_blob(prediction["content_hash"]))

    def data_view(self, blobs, samples: list) -> dict[str, Any]:
        """What the project page's data partial needs beyond the classes and their samples."""
        return {}

    def previews(self, blobs, hashes: list[str]) -> dict[str, str]:
        """Text shown for stored contents (in the blob store ``blobs``) in the UI, by content hash
        (none for images: the UI shows their thumbnails)."""
        return {}


class Target(abc.ABC):
    """What a model predicts: label format, trainability, metrics, gate rule and outputs."""

    #: The target's name ("class", "number").
    name: str = ""
    #: The learner contract a target needs ("classifier", "regressor"): the learners module's family.
    contract: str = ""
    #: Labels are classes (the project has a class list; a class can wait for examples).
    has_classes: bool = True
    #: Answers one class with a confidence, and ``confidence_threshold`` turns a low one into "not
    #: sure": the run page offers its threshold slider from the run's held-out confidences.
    thresholded: bool = False
    #: The ONNX output the model answers in (a table column may not take this name).
    output: str = "probabilities"
    #: Every ONNX output serving reads, in order (a detector answers boxes, scores and labels).
    output_names: tuple[str, ...] = ()
    #: The gate metrics that apply; the first is the default.
    gate_metrics: tuple[str, ...] = ()
    #: The score said in words (history, estimates): accuracy for classes, R² for numbers.
    headline: str = ""
    #: What the served model file is, as the download button says it.
    model_format: str = "ONNX"
    #: The run report partial that replaces the run page's class view (confusion matrix, examples);
    #: empty: the class view itself.
    run_template: str = ""
    #: What the model does, as the new-project form says it after the modality's title.
    goal: str = ""

    @abc.abstractmethod
    def validate_label(self, label: Any) -> str:
        """The stored form of a label, or Invalid saying what a label must be."""

    @abc.abstractmethod
    def training_stages(self):
        """What a training run does differently for this target: encoding labels, the evaluation
        plan, selection, data recipes, scoring, baseline, and what the result and card record
        (see :mod:`dyntrain.training.pipeline`)."""

    def read_label(self, raw: Any, meta: dict[str, Any]) -> tuple[str, Any]:
        """(key, annotation) of a label as sent, for a sample whose content the modality described
        as ``meta`` (an image's size bounds its boxes). The key is what the data view groups and
        filters by; the annotation is the whole label where the key does not say everything, in a
        form that is the same JSON whenever the label is the same (None: the key says it all)."""
        return self.validate_label(raw), None

    def stored_label(self, raw: Any, meta: dict[str, Any], blobs) -> tuple[str, Any]:
        """:meth:`read_label` for a label about to be kept: a target whose annotations name blobs
        (a mask's PNG) puts them into ``blobs`` (the content-addressed store the images are in)
        and may read ones named by hash from there. By default the label needs no blob."""
        return self.read_label(raw, meta)

    def blob_refs(self, annotation: Any) -> list[str]:
        """The blobs an annotation names (housekeeping, backups and purges keep them with it)."""
        return []

    def pin_colors(self, pinned: dict[str, list[int]] | None, existing: set[str],
                   new: set[str]) -> dict[str, list[int]] | None:
        """The project's ``class_colors`` once ``new`` classes join ``existing`` ones, for a target
        whose classes have colours (a mask's): each keeps the colour it shows. None: no colours."""
        return None

    @property
    def colours_classes(self) -> bool:
        """Its classes have colours (it pins them: :meth:`pin_colors`), so ``class_colors`` applies."""
        return type(self).pin_colors is not Target.pin_colors

    #: Files an answer hands the record to keep (:attr:`Answer.files`: a mask's PNG, an output
    #: image), by name. A record keeps them as blobs, named in its ``output["files"]``, exactly as
    #: long as it keeps its input (``store_prediction_inputs`` and its retention): what the model
    #: said is shown beside what it was asked. None by default (the record's JSON says it all).
    output_files: tuple[str, ...] = ()
    #: The prediction page's partial showing those kept files (a mask over the photo, an output
    #: image beside it) and the scripts it needs from ``/static``; none by default.
    prediction_template: str | None = None
    prediction_scripts: tuple[str, ...] = ()

    def attach_blobs(self, samples: list[dict], load: Callable[[str], bytes]) -> list[dict]:
        """Evaluated samples (a run's ``predictions``) ready for :meth:`score_output`: a target whose
        truth is a blob loads it with ``load``. By default as they are."""
        return samples

    def label_classes(self, key: str, annotation: Any) -> set[str]:
        """The classes a labelled sample names: the project's class list grows by them."""
        return {key} if self.has_classes else set()

    #: File formats of labelled data this target reads and writes besides the folder-per-class layout.
    file_formats: tuple[str, ...] = ()

    def read_files(self, path: Path, *, max_bytes: int | None = None, format: str | None = None):
        """(label as sent, file name, bytes) of each labelled file under ``path`` (a folder or a zip):
        by default the folder-per-class layout, ``<label>/<file>``."""
        from ..codecs.archive import iter_labelled_files

        return iter_labelled_files(path, max_bytes=max_bytes)

    def write_files(self, out: Path, samples: list[dict], content: Callable[[dict], bytes], *,
                    format: str | None = None) -> int:
        """Write samples (the API's sample records) and their contents under ``out`` in a layout
        :meth:`read_files` reads back; returns how many were written. By default ``<label>/<file>``."""
        from ..codecs.archive import export_paths

        plan = export_paths(out, [(s["id"], s["label"], s["meta"].get("filename") or "") for s in samples])
        by_id = {s["id"]: s for s in samples}
        for sample_id, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content(by_id[sample_id]))
        return len(plan)

    def renamed(self, key: str, annotation: Any, old: str, new: str) -> tuple[str, Any]:
        """A sample's (key, annotation) after the class ``old`` is renamed ``new``."""
        return (new if key == old else key), annotation

    def without_class(self, key: str, annotation: Any, label: str) -> tuple[str, Any] | None:
        """A sample's (key, annotation) once the class ``label`` is deleted, or None when the sample
        goes with it (by default: a sample of that class goes)."""
        return None if key == label else (key, annotation)

    def label_from_cell(self, value: Any, column: str) -> str:
        """A label from a table cell (the target column of an uploaded row)."""
        return self.validate_label(value)

    @abc.abstractmethod
    def counts(self, labels: list[str]) -> dict[str, int]:
        """A dataset version's ``counts`` of its labels."""

    @abc.abstractmethod
    def check_trainable(self, counts: dict[str, int]) -> None:
        """Refuse data no model can learn from, with what to do about it (Invalid)."""

    def problem(self, label_counts: dict[str, int]) -> str | None:
        """Why training would refuse the current samples ({label: samples}), in the scheduler's words
        (or None)."""
        from ..kernel.errors import Invalid

        try:
            self.check_trainable(self.counts([label for label, n in label_counts.items() for _ in range(n)]))
        except Invalid as exc:
            return exc.message
        return None

    def waiting(self, counts: dict[str, int]) -> dict[str, int]:
        """Labels training leaves out until they have enough examples."""
        return {}

    # -- the gate's served-file comparison ---------------------------------------------------
    def comparable(self, unseen: list[dict], served_labels: list[str]) -> list[dict]:
        """The never-seen evaluated samples the served model can be scored on."""
        return unseen

    @abc.abstractmethod
    def score_output(self, samples: list[dict], output, served_labels: list[str]) -> dict[str, Any]:
        """Metrics of a served model's raw output on ``samples``."""

    @abc.abstractmethod
    def score_predicted(self, samples: list[dict]) -> dict[str, Any]:
        """Metrics of the new model's recorded predictions on ``samples``."""

    def served_note(self, samples: list[dict], predictions: list[dict], served_labels: list[str]) -> str | None:
        """Why enough never-seen samples still say nothing about the served file (None: they do)."""
        return None

    def gate_metric(self, setting: str) -> str:
        """The metric the gate compares, from the project's ``gate_metric`` setting."""
        return setting if setting in self.gate_metrics else self.gate_metrics[0]

    @abc.abstractmethod
    def first_model(self, score: float, floor: Any, metric: str) -> tuple[bool, str]:
        """(promote?, why) for a first model scoring ``score`` against the baseline's ``floor``."""

    @abc.abstractmethod
    def worse(self, new: dict, old: dict, metric: str, settings, min_support: int) -> str | None:
        """Why ``new`` is worse than ``old`` beyond the tolerances (None: it is not)."""

    def run_view(self, result: dict, metrics: dict) -> dict | None:
        """What the target's own run partial (:attr:`run_template`) shows of a run, in plain words
        and pictures; None: the run page's built-in class or number view."""
        return None

    @staticmethod
    def dropped(new: dict, old: dict, metric: str, tolerance: float) -> str | None:
        """The common gate rule: a score may fall by ``tolerance`` at most (None: it did not)."""
        from ..registry.gate import score_text

        score, before = float(new[metric]), float(old[metric])
        if score < before - tolerance:
            return (f"{metric} would drop from {score_text(before)} to {score_text(score)} (more than the allowed "
                    f"{tolerance:.3f})")
        return None

    @staticmethod
    def class_drops(new: dict, old: dict, score: str, support: str, tolerance: float, min_support: int,
                    what: str) -> str | None:
        """Classes whose ``score`` (recall, AP …) falls by more than ``tolerance``, among those with at
        least ``min_support`` examples (their ``support`` count), said as ``what`` would drop."""
        drops = []
        for label, stats in (old.get("per_class") or {}).items():
            after = (new.get("per_class") or {}).get(label)
            if after is None or stats.get(score) is None or after.get(score) is None \
                    or stats.get(support, min_support) < min_support:
                continue
            if float(after[score]) < float(stats[score]) - tolerance:
                drops.append(f"{label} {float(stats[score]):.2f}→{float(after[score]):.2f}")
        return f"{what} would drop too much for: {', '.join(drops)} (allowed {tolerance:.2f})" if drops else None

    def promoted_tail(self) -> list[str]:
        """What else a promotion's reason says held."""
        return []

    @abc.abstractmethod
    def served_summary(self, old: dict, new: dict, n: int, outcome: str) -> str:
        """The served-file comparison in plain words."""

    @abc.abstractmethod
    def show_score(self, x: float | None) -> str:
        """The headline score as a reader sees it."""

    @abc.abstractmethod
    def estimate_words(self) -> tuple[str, str]:
        """(what precedes a score, what the samples are called) in "estimated …, measured later …"."""

    def headline_words(self, metrics: dict[str, Any]) -> str | None:
        """A run's headline score as the training panel says it ("mIoU 82%"); None if it has none."""
        x = (metrics or {}).get(self.headline)
        return None if x is None else f"{self.estimate_words()[0]}{self.show_score(x)}".strip()

    # -- predictions -------------------------------------------------------------------------
    def outputs_read(self) -> tuple[str, ...]:
        """The ONNX outputs serving runs the model for."""
        return self.output_names or (self.output,)

    def split(self, raw, items: list, model) -> Any:
        """The served model's raw outputs for ``items`` (one array per name of :meth:`outputs_read`)
        as one output per item, what :meth:`answer` and :meth:`score_output` take; ``model`` is the
        loaded model (its ``schema`` says what the modality read off the file). By default the
        one output array, row by row."""
        return raw[0]

    def load_served(self, path: Path, project_id: int, version: int, labels, threads: int, modality: Modality):
        """The loaded model serving hot-swaps in, for a target whose model file is not ONNX (a
        recommender's ``.npz``): an object with ``version``, ``labels``, ``schema`` and
        ``predict_items(items)``. None: an ONNX file, opened by :func:`dyntrain.serving.live.load_model`."""
        return None

    @abc.abstractmethod
    def answer(self, output, labels: tuple[str, ...], threshold: float) -> "Answer":
        """One model output row decoded into a prediction (record columns and the API's fields)."""

    def detail(self, output, labels: tuple[str, ...]) -> dict[str, Any]:
        """What an answer adds when the caller asks for the model's full output (``probabilities``
        on ``/predict``): a mask's per-class probability maps. Nothing by default (a classifier's
        answer holds its scores already). Never recorded."""
        return {}

    @abc.abstractmethod
    def cli_columns(self) -> list[str]:
        """The CLI's table columns after the input's."""

    @abc.abstractmethod
    def cli_cells(self, prediction: dict) -> list[str]:
        """One prediction's cells under :meth:`cli_columns`."""

    def prediction_files(self, prediction: dict) -> dict[str, bytes]:
        """Files an answer carries, by file suffix (a mask's ".png"): the CLI's ``predict --out``
        writes them beside each other as ``<input stem><suffix>``. None by default."""
        return {}


@dataclass(frozen=True)
class Answer:
    """A decoded model output: what the API returns (and the record keeps whole, as its ``output``),
    and the class and confidence the prediction list filters and sorts on, where the target has them."""

    public: dict[str, Any]
    label: str | None = None
    confidence: float = 0.0
    #: What the record keeps as its ``output`` where that is less than the answer (a mask's
    #: classes and areas, not its PNG); None: the whole answer.
    stored: dict[str, Any] | None = None
    #: Bytes the record keeps as blobs where it keeps the input (see ``Target.output_files``):
    #: ``{name: file bytes}``; the record's ``output["files"]`` names them by sha256.
    files: dict[str, bytes] | None = None

    @property
    def record(self) -> dict[str, Any]:
        """The prediction record's columns."""
        return {"label": self.label, "confidence": self.confidence,
                "output": self.public if self.stored is None else self.stored}


@dataclass(frozen=True)
class Task:
    """A registered task: its name (what a project stores), its modality and its target."""

    name: str
    modality: Modality
    target: Target
    #: How the project list offers it ("Photos (recognise what is in a picture)"); the name if empty.
    title: str = ""

    def candidates(self, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        return self.modality.candidates(self.target, n_samples, n_classes, time_budget_s)
