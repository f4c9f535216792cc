"""Models trained elsewhere: an uploaded ONNX file is validated, evaluated on the project's
holdout and registered as a model version that can be promoted like any other.

Only ONNX is accepted: pickles, PyTorch checkpoints and other formats that run code when
loaded are refused before anything is parsed. The upload is copied to a temporary file in
chunks (never whole into memory), refused as soon as it passes ``max_model_bytes``; a model
whose tensors (anywhere: initializers, attributes, sparse tensors, subgraphs, functions)
point at external data files is refused; error messages never show server paths.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..kernel.core import Core
from .. import tasks
from ..kernel.entities import ModelVersion
from ..kernel.errors import Invalid
from ..kernel.limits import exceeded
from ..kernel.projects import project_row
from ..training.split import is_holdout
from .models import register_model

__all__ = ["upload_model", "ALLOWED_DOMAINS"]

ALLOWED_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
# Magic bytes of formats that execute code on load (pickle protocols 2-5, zip-based torch checkpoints).
_EXECUTABLE = {b"\x80\x02": "a Python pickle", b"\x80\x03": "a Python pickle", b"\x80\x04": "a Python pickle",
               b"\x80\x05": "a Python pickle", b"PK": "a zip archive (e.g. a PyTorch .pt checkpoint)"}


def _refuse_executable(data: bytes) -> None:
    for magic, what in _EXECUTABLE.items():
        if data.startswith(magic):
            raise Invalid(f"the file is {what}; only ONNX models are accepted, because loading other formats "
                          "can run arbitrary code. Export your model with torch.onnx.export, skl2onnx or tf2onnx.")


_COPY_CHUNK = 1024 * 1024


def _save_limited(source: BinaryIO, target: Path, limit: int) -> int:
    """Copy ``source`` to ``target`` in chunks; :class:`TooLarge` at the first chunk past ``limit``."""
    size = 0
    with open(target, "wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise exceeded(f"the model is more than {limit} bytes", limit, "max_model_bytes")
            out.write(chunk)
    return size


def _all_tensors(graph) -> Iterator:
    """Every TensorProto of a graph and its subgraphs (If/Loop/Scan bodies), recursively:
    initializers, sparse initializers, Constant values and other attribute tensors.

    (onnx.external_data_helper's iterators are private and skip sparse tensors.)"""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node) -> Iterator:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        sparse_tensors = list(attribute.sparse_tensors)
        if attribute.HasField("sparse_tensor"):  # e.g. Constant's sparse_value
            sparse_tensors.append(attribute.sparse_tensor)
        for sparse in sparse_tensors:
            yield from (sparse.values, sparse.indices)
        if attribute.HasField("g"):
            yield from _all_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _all_tensors(graph)


def _uses_external_data(model) -> bool:
    from onnx.external_data_helper import uses_external_data

    tensors = [_all_tensors(model.graph)] + [_node_tensors(n) for f in model.functions for n in f.node]
    return any(uses_external_data(t) or len(t.external_data) for group in tensors for t in group)


def _without_paths(message: str, *paths: Path) -> str:
    """``message`` with the server's directories left out (they say nothing to the uploader)."""
    for path in sorted({str(p) for p in paths}, key=len, reverse=True):
        message = message.replace(path, "…")
    return message


def _check_graph(source: Path, task: str, n_labels: int):
    """Parse and check the ONNX graph; return it with its input/output renamed to our contract."""
    import onnx

    try:
        # load_external_data=False: reading the files a hostile model names is what we refuse.
        model = onnx.load(source, load_external_data=False)
    except Exception:
        raise Invalid("not an ONNX model (could not parse the file)") from None
    domains = {o.domain for o in model.opset_import} | {n.domain for n in model.graph.node}
    unknown = sorted(domains - ALLOWED_DOMAINS)
    if unknown:
        raise Invalid(f"the model uses operators from {unknown}; allowed are the standard ONNX domains and "
                      "ONNX Runtime's com.microsoft")
    if _uses_external_data(model):
        raise Invalid("the model refers to external data files; save it as one self-contained file "
                      "(onnx.save(model, path, save_as_external_data=False))")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not 9 <= opset <= onnx.defs.onnx_opset_version():
        raise Invalid(f"the model's opset {opset} is not supported (9 to {onnx.defs.onnx_opset_version()})")
    initializers = {t.name for t in model.graph.initializer}
    # the task's modality checks the one input and names what serving feeds it under
    fed_as = tasks.get(task).modality.external_input(model, task)
    _rename(model, next(i.name for i in model.graph.input if i.name not in initializers), fed_as)
    _rename(model, model.graph.output[0].name, "probabilities")
    del model.graph.output[1:]  # serving reads the class probabilities only
    return model


def _rename(model, old: str, new: str) -> None:
    if old == new:
        return
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name == old:
            value.name = new
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def upload_model(core: Core, project: str, source: BinaryIO, labels: list[str], *, filename: str = "",
                 description: str = "") -> ModelVersion:
    """Validate, evaluate and register an external ONNX model (not promoted: that is a choice).

    ``source`` (a file object, e.g. the request's spooled upload) is copied in chunks into a
    temporary file in the data dir, never read whole into memory.

    >>> upload_model(core, "products", open("m.onnx", "rb"), ["cup", "mug"])  # doctest: +SKIP
    """
    from ..datasets.versions import version_items
    from ..learners.metrics import classification_metrics
    from ..serving.live import load_model

    with tempfile.TemporaryDirectory(dir=core.settings.data_dir) as tmp:
        upload = Path(tmp) / "upload.onnx"
        _save_limited(source, upload, core.settings.max_model_bytes)
        with open(upload, "rb") as f:
            _refuse_executable(f.read(8))
        labels = [str(x).strip() for x in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels) or not all(labels):
            raise Invalid("give the model's class labels in output order: at least 2, distinct, non-empty")
        with core.db.read() as s:
            row = project_row(s, project)
            task, pid, head = row.task, row.id, row.head_version
            items = version_items(s, row, head) if head else []
        model = _check_graph(upload, task, len(labels))
        upload.unlink()
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        del model  # the parsed graph is as large as the file
        try:
            loaded = load_model(path, pid, 0, labels, threads=core.settings.onnx_threads, task=task)
        except Exception as exc:
            reason = _without_paths(str(exc), Path(tmp), core.settings.data_dir, core.settings.artifact_root)
            raise Invalid(f"ONNX Runtime cannot run this model: {reason[:300]}") from None
        modality = tasks.get(task).modality
        probe = loaded.predict_items([modality.decode(modality.example())])
        if probe.shape != (1, len(labels)) or not np.allclose(probe.sum(1), 1, atol=1e-3) or (probe < 0).any():
            raise Invalid(f"the model's first output must be class probabilities of shape [N, {len(labels)}] "
                          f"summing to 1 (got shape {list(probe.shape)}); add a Softmax or check the label list")
        card = {"labels": labels, "learner": None, "source": "external", "filename": filename,
                "description": description, "task": task,
                "input": {"name": loaded.input_names, "note": "validated on upload"},
                **_evaluate(core, loaded, items, labels, modality, head, classification_metrics)}
        return register_model(core, pid, path, card, run_id=None, source="external")


def _evaluate(core: Core, model, items, labels: list[str], modality, version: int | None, metrics_fn) -> dict[str, Any]:
    """Score on the project's holdout (all data if it has no holdout: none of it trained this model)."""
    known = [i for i in items if i.label in labels]
    holdout = [i for i in known if is_holdout(i.content_hash)]
    chosen, where = (holdout, "holdout") if len({i.label for i in holdout}) >= 2 else (known, "all samples")
    if not chosen:
        return {"metrics": None, "evaluation": "none: the project has no samples of the model's classes yet",
                "dataset_version": version}
    probs = np.concatenate([model.predict_items([modality.decode(core.blobs.get(i.content_hash))
                                                 for i in chosen[k:k + 32]]) for k in range(0, len(chosen), 32)])
    y = np.array([labels.index(i.label) for i in chosen])
    metrics = metrics_fn(y, probs, labels)
    skipped = len(items) - len(known)
    return {"metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "per_class")},
            "evaluation": f"{where} of dataset version {version} ({len(chosen)} samples"
                          + (f"; {skipped} samples of classes the model does not know were left out" if skipped else "")
                          + ")", "dataset_version": version}
