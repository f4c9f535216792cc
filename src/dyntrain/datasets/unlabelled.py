"""The labelling queue: items uploaded without a label wait here until a person labels them.

An unlabelled item is a sample with status ``unlabelled``: it is in no dataset version and
nothing trains on it (:func:`dyntrain.datasets.versions.snapshot` takes ``active`` samples only).
The model in service suggests a label for each, with its confidence; confirming a batch of
decisions turns those items into ordinary labelled samples in ONE new dataset version.

The queue is shown in *teaching order*: the item to label next is the one expected to teach
the model most. Measured on Lite0 embeddings of handwritten digits (1 label per class to start,
rounds of 10 labels, 5 seeds), k-means diversity on the embeddings beat random picks while
labels were few (accuracy 0.51 vs 0.40 at 20 labels), the smallest margin within k-means
clusters beat them later (0.70 vs 0.65 at 60), and plain least-confidence was worse than random
at the start (0.24). So :func:`teaching_order` picks cluster representatives until there are
about :data:`DIVERSITY_UNTIL` labels per class, then the least certain item of each cluster.

Only tasks whose model answers one class per item with probabilities have a queue
(:func:`supports`): image, text and table-row classification among the built-in ones.

>>> add_unlabelled(core, "shop", [Upload("a.jpg", data)])  # doctest: +SKIP
>>> queue(core, "shop")["items"][0]["suggestion"]  # doctest: +SKIP
{'label': 'mug', 'confidence': 0.91, 'margin': 0.85}
>>> confirm(core, "shop", [(17, "mug"), (18, "cup")])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import func, select

from .. import tasks
from ..kernel.core import Core
from ..kernel.entities import DatasetVersion, Sample
from ..kernel.errors import DyntrainError, Invalid, NotFound, NotReady, TooLarge
from ..kernel.limits import exceeded
from ..kernel.projects import project_row
from ..storage.rows import ClassRow, ProjectRow, SampleRow
from .changes import Upload, _ensure_classes
from .versions import snapshot

__all__ = ["UNLABELLED", "DIVERSITY_UNTIL", "supports", "add_unlabelled", "add_unlabelled_rows", "queue",
           "queue_size", "get_item", "confirm", "skip", "discard", "teaching_order", "embed"]

log = logging.getLogger(__name__)

#: The status of a sample waiting in the queue (SampleRow.status holds up to 10 characters).
UNLABELLED = "unlabelled"
#: Labels per class below which the order favours diversity, above which uncertainty (see the module doc).
DIVERSITY_UNTIL = 5
#: Clusters both phases spread their picks over: one round of labels, as measured. The order is
#: computed afresh whenever a batch is confirmed, so each round starts from new clusters.
ROUND = 10
#: Dimensions the embeddings are reduced to (PCA) before k-means.
PCA_DIMS = 32
#: Most items ordered by teaching value per request; newer ones follow in upload order.
MAX_ORDERED = 2000
#: The feature kind each modality's learners already compute that serves as its embedding
#: (by the modality's stored kind); a modality without one is ordered by uncertainty alone.
EMBEDDING_KINDS = {"image": "lite0.pooled", "text": "minilm.mean", "row": "table.rows"}

# The model in service's probabilities per (data dir, project id, model version, content hash):
# listing the queue again, or after labelling a few items, scores only what is new.
_SCORES: OrderedDict[tuple, np.ndarray] = OrderedDict()
_SCORES_MAX = 50_000
_SCORES_LOCK = threading.Lock()


def supports(task: tasks.Task) -> bool:
    """Whether a task has a labelling queue: its model answers one class per item, as probabilities."""
    return bool(task.target.has_classes and task.target.contract == "classifier")


def _task(row: ProjectRow) -> tasks.Task:
    task = tasks.get(row.task)
    if not supports(task):
        raise Invalid(f"project {row.name!r} is a {row.task} project: the labelling queue is for projects whose "
                      "model picks one class per item (" + ", ".join(
                          n for n in tasks.names() if supports(tasks.get(n))) + ")")
    return task


# -- adding ------------------------------------------------------------------------------------


def add_unlabelled(core: Core, project: str, uploads: list[Upload], *,
                   source: str = "upload") -> dict[str, Any]:
    """Put items (image files, UTF-8 texts, or table rows as canonical JSON bytes) in the queue.

    Every item is checked first and a bad one rejects the request with nothing added (as for
    labelled uploads). An item whose content is already in the project (labelled, or waiting)
    is left out and named in ``duplicates``: labelling it twice would teach nothing.

    Returns ``{"added": [Sample, …], "duplicates": [file name, …]}``.
    """
    with core.db.read() as s:
        task = _task(project_row(s, project))
    modality = task.modality
    limit, setting, what = modality.upload_limit(core.settings)
    if not uploads:
        raise Invalid("nothing was sent: send files (multipart field 'files'), texts or rows")
    if len(uploads) > limit:
        raise exceeded(f"{len(uploads)} {what} in one request", limit, setting, "split them into batches")
    accepted, rejected = [], []
    for upload in uploads:
        try:
            data = modality.canonical(upload.data)
            accepted.append((upload.filename, data, modality.content_meta(core.settings, upload.filename, data)))
        except (Invalid, TooLarge) as exc:
            rejected.append({"file": upload.filename, "reason": exc.message})
    if rejected:
        raise Invalid(f"{len(rejected)} of {len(uploads)} items were rejected; nothing was added", details=rejected)
    hashes = [core.blobs.put(data) for _, data, _ in accepted]
    with core.db.write() as s:
        row = project_row(s, project, lock=True)  # serialised with labelling: no duplicate slips in between
        known = set(s.scalars(select(SampleRow.content_hash).where(
            SampleRow.project_id == row.id, SampleRow.status.in_(("active", UNLABELLED)),
            SampleRow.content_hash.in_(set(hashes)))))
        added, duplicates = [], []
        for h, (filename, _, meta) in zip(hashes, accepted):
            if h in known:
                duplicates.append(filename)
                continue
            known.add(h)  # the same content twice in one request: the second is a duplicate too
            added.append(SampleRow(project_id=row.id, kind=modality.kind, content_hash=h, label="", annotation=None,
                                   source=source[:200], meta=meta, status=UNLABELLED))
        s.add_all(added)
        s.flush()
        return {"added": [r.to_entity() for r in added], "duplicates": duplicates}


def add_unlabelled_rows(core: Core, project: str, rows: list[dict], *, drop: str | None = None,
                        source: str = "upload") -> dict[str, Any]:
    """Table rows without their target into the queue of a tabular project; ``drop`` names a
    column to leave out (an empty target column of the file)."""
    from ..codecs.tables import row_bytes

    limit = core.settings.max_csv_rows
    if len(rows) > limit:
        raise exceeded(f"{len(rows)} rows in one request", limit, "max_csv_rows", "split them into batches")
    uploads, rejected = [], []
    for i, r in enumerate(rows):
        try:
            if not isinstance(r, dict):
                raise Invalid("a row must be an object of column: value")
            uploads.append(Upload(f"row-{i + 1}", row_bytes({k: v for k, v in r.items() if k != drop})))
        except DyntrainError as exc:
            rejected.append({"row": i + 1, "reason": exc.message})
    if rejected:
        raise Invalid(f"{len(rejected)} of {len(rows)} rows were rejected; nothing was added", details=rejected)
    return add_unlabelled(core, project, uploads, source=source)


# -- reading -----------------------------------------------------------------------------------


def _waiting(s, pid: int) -> list[SampleRow]:
    return list(s.scalars(select(SampleRow).where(SampleRow.project_id == pid, SampleRow.status == UNLABELLED)
                          .order_by(SampleRow.id)))


def _item_row(s, row: ProjectRow, sample_id: int) -> SampleRow:
    item = s.get(SampleRow, sample_id)
    if item is None or item.project_id != row.id or item.status != UNLABELLED:
        raise NotFound(f"item {sample_id} is not waiting in the labelling queue of project {row.name!r} "
                       "(labelled or deleted already?)")
    return item


def queue_size(core: Core, project: str) -> int:
    """How many items wait in the project's queue."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        return s.scalar(select(func.count()).select_from(SampleRow).where(
            SampleRow.project_id == pid, SampleRow.status == UNLABELLED)) or 0


def get_item(core: Core, project: str, sample_id: int) -> Sample:
    """One waiting item (its content is ``core.blobs.get(item.content_hash)``)."""
    with core.db.read() as s:
        return _item_row(s, project_row(s, project), sample_id).to_entity()


def queue(core: Core, project: str, *, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """The waiting items in teaching order, each with the model in service's suggestion.

    Returns ``total``, ``strategy`` (``diversity``, ``margin``, ``uncertainty`` or ``arrival``:
    how the order was chosen, see :func:`teaching_order`), ``labels_per_class``, ``model_version``
    (None: no model in service yet, so no suggestions) and ``items`` from ``offset``: each with
    ``id``, ``position``, ``content_hash``, ``filename``, ``preview`` (a text's or row's words),
    ``source``, ``skipped`` and ``suggestion`` ({label, confidence, margin} or None).
    Skipped items come last, in the order they were skipped.
    """
    with core.db.read() as s:
        row = project_row(s, project)
        task, pid = _task(row), row.id
        items = [r.to_entity() for r in _waiting(s, pid)]
        labelled = s.scalar(select(func.count()).select_from(SampleRow).where(
            SampleRow.project_id == pid, SampleRow.status == "active")) or 0
        n_classes = s.scalar(select(func.count()).select_from(ClassRow).where(ClassRow.project_id == pid)) or 0
    per_class = labelled / max(n_classes, 1)
    fresh = [x for x in items if not x.meta.get("skipped_at")]
    skipped = sorted((x for x in items if x.meta.get("skipped_at")), key=lambda x: (x.meta["skipped_at"], x.id))
    ordered_part, rest = fresh[:MAX_ORDERED], fresh[MAX_ORDERED:]
    scored = ordered_part + skipped  # what is beyond the ordered part is scored when shown
    model, probabilities = _suggestions(core, pid, task, scored)
    order, strategy = list(range(len(ordered_part))), "arrival"
    if len(ordered_part) > 1:
        p = probabilities[:len(ordered_part)] if probabilities is not None else None
        try:
            embeddings = embed(core, task, [x.content_hash for x in ordered_part])
        except DyntrainError as exc:  # an unreadable item must not hide the queue: order by what is known
            log.warning("labelling queue of %s: no embeddings (%s)", project, exc.message)
            embeddings = None
        order, strategy = teaching_order(embeddings, p, per_class)
    sequence = [ordered_part[i] for i in order] + rest + skipped
    scores = {x.id: probabilities[k] for k, x in enumerate(scored)} if probabilities is not None else {}
    labels = model.labels if model is not None else ()
    previews = task.modality.previews(core.blobs, [x.content_hash for x in sequence[offset:offset + limit]])
    out = []
    for position, x in enumerate(sequence[offset:offset + limit], start=offset + 1):
        suggestion = None
        if x.id in scores:
            suggestion = _suggestion(scores[x.id], labels)
        elif model is not None and probabilities is not None:  # beyond the ordered part: scored when shown
            one = _probabilities(core, pid, task, model, [x])
            suggestion = _suggestion(one[0], labels) if one is not None else None
        out.append({"id": x.id, "position": position, "content_hash": x.content_hash,
                    "filename": x.meta.get("filename") or "", "preview": previews.get(x.content_hash),
                    "source": x.source, "skipped": bool(x.meta.get("skipped_at")), "created_at": x.created_at,
                    "suggestion": suggestion})
    return {"total": len(items), "strategy": strategy, "labels_per_class": round(per_class, 2),
            "diversity_until": DIVERSITY_UNTIL, "model_version": model.version if model is not None else None,
            "offset": offset, "limit": limit, "items": out}


def _suggestion(p: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    top = np.argsort(-p)[:2]
    margin = float(p[top[0]] - (p[top[1]] if len(top) > 1 else 0.0))
    return {"label": labels[int(top[0])], "confidence": round(float(p[top[0]]), 4), "margin": round(margin, 4)}


def _suggestions(core: Core, pid: int, task: tasks.Task, items: list[Sample]):
    """(the model in service or None, its probabilities for ``items`` [N, classes] or None)."""
    try:
        model = core.live.production(pid)
    except NotReady:
        return None, None
    return model, _probabilities(core, pid, task, model, items)


def _probabilities(core: Core, pid: int, task: tasks.Task, model, items: list[Sample]) -> np.ndarray | None:
    """The served model's class probabilities for each item, computed once per content and model."""
    if not items:
        return np.zeros((0, len(model.labels)), np.float32)
    base = (str(core.settings.data_dir), pid, model.version)
    with _SCORES_LOCK:
        known = {x.content_hash: _SCORES[base + (x.content_hash,)] for x in items if base + (x.content_hash,) in _SCORES}
    todo = list(dict.fromkeys(x.content_hash for x in items if x.content_hash not in known))
    columns = [c["name"] for c in model.schema] if model.schema else None
    try:
        for start in range(0, len(todo), 32):
            chunk = todo[start:start + 32]
            decoded = [task.modality.decode(core.blobs.get(h), max_pixels=core.settings.max_image_pixels)
                       for h in chunk]
            if columns is not None:  # a row holds what was uploaded: give the model exactly its columns
                decoded = [{c: d.get(c) for c in columns} for d in decoded]
            out = np.asarray(model.predict_items(decoded), dtype=np.float32)
            with _SCORES_LOCK:
                for h, p in zip(chunk, out):
                    known[h] = p
                    _SCORES[base + (h,)] = p
                while len(_SCORES) > _SCORES_MAX:
                    _SCORES.popitem(last=False)
    except DyntrainError as exc:  # e.g. a row whose cell the model cannot read: no suggestions, still a queue
        log.warning("labelling queue: the model in service cannot score every item (%s)", exc.message)
        return None
    return np.stack([known[x.content_hash] for x in items])


def embed(core: Core, task: tasks.Task, hashes: list[str]) -> np.ndarray | None:
    """An embedding per content: the features the modality's learners already compute (cached
    Lite0 pooled features of images, MiniLM embeddings of texts; table rows imputed, scaled and
    one-hot encoded as the linear table model does), L2-normalised. None when the modality has none."""
    kind = EMBEDDING_KINDS.get(task.modality.kind)
    if kind is None or not hashes:
        return None
    from ..scheduler.jobs import extractor  # the warm, cached feature extractor training uses

    X = task.modality.features([kind], hashes, core.blobs.get, extractor(core))[kind]
    if X.dtype.names:  # a table: numbers and categories in one matrix
        X = _table_matrix(X)
    X = np.asarray(X, dtype=np.float32).reshape(len(hashes), -1)
    from ..learners.features import l2_normalize

    return l2_normalize(X)


def _table_matrix(X: np.ndarray) -> np.ndarray:
    """A ``table.rows`` array as numbers: numeric columns median-imputed and standardised,
    categorical ones one-hot (the linear table model's preprocessing)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    names = list(X.dtype.names)
    numeric = [n for n in names if X.dtype[n] != object]
    categorical = [n for n in names if X.dtype[n] == object]
    frame = np.empty((len(X), len(names)), dtype=object)
    for j, n in enumerate(names):
        frame[:, j] = X[n]
    parts = []
    if numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                       ("scale", StandardScaler())]), [names.index(n) for n in numeric]))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=50),
                      [names.index(n) for n in categorical]))
    if not parts:
        return np.zeros((len(X), 1), np.float32)
    return np.asarray(ColumnTransformer(parts, sparse_threshold=0.0).fit_transform(frame), dtype=np.float32)


# -- the order ---------------------------------------------------------------------------------


def teaching_order(embeddings: np.ndarray | None, probabilities: np.ndarray | None, labels_per_class: float,
                   *, seed: int = 0) -> tuple[list[int], str]:
    """The order to label items in, and how it was chosen.

    * ``diversity`` — fewer than :data:`DIVERSITY_UNTIL` labels per class (or no model yet):
      k-means on the embeddings into :data:`ROUND` clusters; the item nearest each centroid
      first, largest cluster first, then the next nearest of each cluster, and so on.
    * ``margin`` — enough labels and a model: k-means into :data:`ROUND` clusters;
      each cluster's items by the gap between the model's two most likely classes, smallest
      first, taken in turns across clusters (the cluster with the least certain item first), so
      a round of labels covers different regions instead of one confusing corner.
    * ``uncertainty`` — no embedding but a model: smallest margin first.
    * ``arrival`` — neither: upload order.

    >>> teaching_order(None, np.array([[.9, .1], [.55, .45]]), 6)
    ([1, 0], 'uncertainty')
    """
    n = len(embeddings) if embeddings is not None else len(probabilities) if probabilities is not None else 0
    if n <= 1:
        return list(range(n)), "arrival"
    margins = None
    if probabilities is not None:
        top2 = -np.sort(-np.asarray(probabilities, dtype=np.float64), axis=1)[:, :2]
        margins = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)
    if embeddings is None:
        if margins is None:
            return list(range(n)), "arrival"
        return [int(i) for i in np.argsort(margins, kind="stable")], "uncertainty"
    if margins is None or labels_per_class < DIVERSITY_UNTIL:
        labels, distances = _kmeans(embeddings, min(n, ROUND), seed)
        return _round_robin(labels, distances, by_size=True), "diversity"
    labels, _ = _kmeans(embeddings, min(n, ROUND), seed)
    return _round_robin(labels, margins, by_size=False), "margin"


def _kmeans(X: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of each row and its distance to that cluster's centre."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] > PCA_DIMS and len(X) > PCA_DIMS:
        # k-means in 1280 dimensions is slow and its distances mostly noise: cluster on the main directions
        X = PCA(PCA_DIMS, random_state=seed).fit_transform(X)
    distinct = len(np.unique(X.round(6), axis=0))
    k = max(1, min(k, distinct))  # identical rows cannot fill more clusters than there are points
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(X)
    distances = np.linalg.norm(X - km.cluster_centers_[km.labels_], axis=1)
    return km.labels_, distances


def _round_robin(clusters: np.ndarray, key: np.ndarray, *, by_size: bool) -> list[int]:
    """Each cluster's items by ``key`` (smallest first), then one from each cluster in turn:
    clusters ordered by size (largest first) or by their smallest key."""
    groups: dict[int, list[int]] = {}
    for i in np.lexsort((np.arange(len(key)), key)):
        groups.setdefault(int(clusters[i]), []).append(int(i))
    if by_size:
        turn = sorted(groups, key=lambda c: (-len(groups[c]), groups[c][0]))
    else:
        turn = sorted(groups, key=lambda c: (key[groups[c][0]], groups[c][0]))
    order: list[int] = []
    depth = 0
    while len(order) < len(key):
        order += [groups[c][depth] for c in turn if depth < len(groups[c])]
        depth += 1
    return order


# -- labelling ---------------------------------------------------------------------------------


def confirm(core: Core, project: str, decisions: list[tuple[int, Any]]) -> tuple[list[Sample], DatasetVersion | None]:
    """Label waiting items (``(id, label)`` pairs, a suggestion accepted or corrected): they join
    the project's data as ONE new dataset version. Every id and label is checked first; any bad one
    refuses the whole batch, naming each."""
    if not decisions:
        raise Invalid("no items to label were sent")
    ids = [i for i, _ in decisions]
    if len(set(ids)) != len(ids):
        raise Invalid("an item appears twice in one batch: send one label per item")
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        target = _task(row).target
        problems, labelled = [], []
        for sample_id, label in decisions:
            try:
                item = _item_row(s, row, sample_id)
                key, annotation = target.stored_label(label, dict(item.meta or {}), core.blobs)
                labelled.append((item, key, annotation))
            except DyntrainError as exc:
                problems.append({"id": sample_id, "reason": exc.message})
        if problems:
            raise Invalid(f"{len(problems)} of {len(decisions)} items cannot be labelled; nothing was changed",
                          details=problems)
        for item, key, annotation in labelled:
            meta = {k: v for k, v in (item.meta or {}).items() if k != "skipped_at"}
            item.label, item.annotation, item.status, item.meta = key, annotation, "active", meta
        _ensure_classes(s, row, set().union(*(target.label_classes(k, a) for _, k, a in labelled)))
        s.flush()
        version = snapshot(s, row, f"labelled {len(labelled)} item(s) from the unlabelled queue")
        return [item.to_entity() for item, _, _ in labelled], version


def skip(core: Core, project: str, sample_id: int) -> Sample:
    """Move a waiting item to the end of the queue (after every item not skipped)."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        item = _item_row(s, row, sample_id)
        item.meta = {**(item.meta or {}), "skipped_at": datetime.now(timezone.utc).isoformat()}
        return item.to_entity()


def discard(core: Core, project: str, sample_ids: list[int]) -> int:
    """Delete waiting items (no dataset version changes: they were in none). Returns how many."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        items = [_item_row(s, row, i) for i in dict.fromkeys(sample_ids)]
        for item in items:
            s.delete(item)
        return len(items)
