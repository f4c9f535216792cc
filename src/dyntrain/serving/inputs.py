"""Turning raw contents into an ONNX model's inputs — the one path training's export check
and serving share. Torch-free. Each task's modality decodes and feeds (see :mod:`dyntrain.tasks`);
the text and table formats' own details live here.

Image models take ``image`` (uint8 NHWC 224); text models take either ``text`` (strings,
TF-IDF graphs), ``chunk_tokens`` + ``chunk_token_mask`` (MiniLM graphs embedding whole texts in
chunks; ``chunk_ids`` + ``chunk_mask`` in graphs exported before chunks were padded per batch) or
``input_ids`` + ``attention_mask`` (older MiniLM graphs, truncated texts); table models take one
input per column (float32 or string [N, 1], see :func:`dyntrain.codecs.table_features.row_feed`).
"""

from __future__ import annotations

import numpy as np

from ..codecs import texts
from ..kernel.errors import Invalid

__all__ = ["model_feed", "table_schema"]


def model_feed(input_names: list[str], items: list) -> dict[str, np.ndarray]:
    """The feed dict for a text model's session from decoded texts: the graph's own inputs say
    which of its formats it takes — every one it names (a soft vote of a TF-IDF and a MiniLM
    model takes both the strings and their chunks)."""
    feed: dict[str, np.ndarray] = {}
    if "text" in input_names:
        feed["text"] = np.array(items, dtype=object).reshape(-1, 1)
    if "chunk_tokens" in input_names:  # a long text whole, in chunks (texts.tokenize_chunk_grid)
        feed["chunk_tokens"], feed["chunk_token_mask"] = texts.tokenize_chunk_grid(list(items))
    if "chunk_ids" in input_names:  # the same, flat and padded to 256 (models exported before v2)
        feed["chunk_ids"], feed["chunk_mask"] = texts.tokenize_chunks(list(items))
    if "input_ids" in input_names:
        feed["input_ids"], feed["attention_mask"] = texts.tokenize(list(items))
    unknown = sorted(set(input_names) - set(feed))
    if not feed or unknown:
        raise Invalid(f"this model's inputs {unknown or input_names} are not ones dyntrain can feed")
    return feed


def table_schema(session) -> list[dict[str, str]]:
    """A table model's columns from its ONNX inputs: float → numeric, string → categorical.

    The file itself says what it takes, so serving never depends on a card being in step.
    """
    from ..codecs.table_features import CATEGORICAL, NUMERIC

    schema = []
    for i in session.get_inputs():
        if i.type == "tensor(float)":
            schema.append({"name": i.name, "type": NUMERIC})
        elif i.type == "tensor(string)":
            schema.append({"name": i.name, "type": CATEGORICAL})
        else:
            raise Invalid(f"input {i.name!r} of this model is {i.type}; a table model takes float or string columns")
    return schema
