"""The text modality: a UTF-8 text, fed to the model as a string."""

from __future__ import annotations

import functools
from typing import Any

from .base import Modality
from .image import _one_input

__all__ = ["TextModality", "text_candidates"]


@functools.cache  # built on first use: serving imports this module without the learners
def text_candidates() -> tuple:
    """Both heads at every strength of LINEAR_C (features are computed once; each fit is a
    fraction of a second), the historical first four first so a short budget keeps them."""
    from ..learners.candidates import LINEAR_C, Candidate

    first = (Candidate("text.embedding_logreg", {"C": 10.0}), Candidate("text.tfidf_logreg", {"C": 10.0}),
             Candidate("text.embedding_logreg", {"C": 1.0}), Candidate("text.tfidf_logreg", {"C": 100.0}))
    return first + tuple(c for c in (Candidate(name, {"C": C}) for name in ("text.embedding_logreg",
                                                                             "text.tfidf_logreg")
                                     for C in LINEAR_C) if c not in first)


class TextModality(Modality):
    kind = noun = "text"
    plural = "texts"
    title = "Texts"
    upload_format = "texts"
    data_template = "_data_cards.html"
    help_template = "_help_texts.html"
    try_template = "_try_files.html"
    try_script = "try.js"
    shows_text = True

    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        from ..kernel.limits import exceeded

        text = self.decode(data)
        if len(text) > settings.max_text_chars:
            raise exceeded(f"text has {len(text)} characters", settings.max_text_chars, "max_text_chars",
                           "split it into several samples")
        return {"filename": filename, "chars": len(text), "preview": text[:120]}

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000) -> str:
        from ..kernel.errors import Invalid

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("text is not valid UTF-8") from None
        if not text.strip():
            raise Invalid("the text is empty")
        return text

    def media_type(self, data: bytes) -> str:
        return "text/plain; charset=utf-8"

    def example(self) -> bytes:
        return b"an example"

    def feed(self, input_names: list[str], columns, items: list) -> dict[str, Any]:
        from ..serving.inputs import model_feed

        return model_feed(input_names, items)

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        return list(text_candidates())

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        import numpy as np

        from ..learners.text import TEXT_EMBED, TEXT_RAW, TextEncoder

        load_text = lambda h: self.decode(load_blob(h))  # noqa: E731
        out = {}
        if TEXT_RAW in kinds:
            out[TEXT_RAW] = np.array([load_text(h) for h in hashes], dtype=object)
        if TEXT_EMBED in kinds:  # cached per content, like image features
            out[TEXT_EMBED] = TextEncoder(extractor.cache_dir, threads=extractor.threads).features(
                hashes, load_text, progress=progress)
        return out

    def input_contract(self, onnx_path) -> dict[str, Any]:
        import onnx

        from ..codecs import texts

        names = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
        formats = []  # a soft vote of TF-IDF and MiniLM members takes several formats side by side
        if "text" in names:
            formats.append(("none (TF-IDF inside the graph)",
                            {"name": "text", "dtype": "string", "shape": [None, 1]}))
        if "chunk_tokens" in names:
            formats.append((texts.CHUNKED_PREPROCESSING,
                            {"name": ["chunk_tokens", "chunk_token_mask"], "dtype": "int64",
                             "shape": [None, None, None],
                             "tokenizer": f"all-MiniLM-L6-v2 tokenizer.json (tokenizers library), the whole text in "
                                          f"[CLS] … [SEP] chunks of at most {texts.CHUNK_TOKENS} tokens, [text, "
                                          "chunk, token], padded to the batch's longest chunk"}))
        elif "chunk_ids" in names:  # exported before chunks were padded per batch
            formats.append((texts.CHUNKED_PREPROCESSING.replace("-v2", "-v1"),
                            {"name": ["chunk_ids", "chunk_mask"], "dtype": "int64", "shape": [None, None],
                             "tokenizer": f"all-MiniLM-L6-v2 tokenizer.json (tokenizers library), the whole text in "
                                          f"[CLS] … [SEP] chunks of {texts.CHUNK_TOKENS} tokens, side by side"}))
        elif "input_ids" in names:
            formats.append((texts.TEXT_PREPROCESSING,
                            {"name": ["input_ids", "attention_mask"], "dtype": "int64", "shape": [None, None],
                             "tokenizer": "all-MiniLM-L6-v2 tokenizer.json (tokenizers library)"}))
        if len(formats) == 1:
            return {"preprocessing": formats[0][0], "input": formats[0][1]}
        return {"preprocessing": "; ".join(f"{f['name'] if isinstance(f['name'], str) else ', '.join(f['name'])}: {p}"
                                           for p, f in formats),
                "input": {"name": names, "formats": [f for _, f in formats]}}

    def external_input(self, model, task: str) -> str:
        _one_input(model, task, "text", "one string input of shape [N, 1]", "STRING",
                   lambda dims: dims[1:] in ([1], [None]))
        return "text"

    def previews(self, blobs, hashes: list[str], chars: int = 400) -> dict[str, str]:
        return {h: blobs.get(h).decode("utf-8", errors="replace")[:chars]
                for h in dict.fromkeys(hashes) if blobs.exists(h)}
