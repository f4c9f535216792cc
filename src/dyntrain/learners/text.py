"""Text learners: a linear model on all-MiniLM-L6-v2 sentence embeddings, and TF-IDF + a
linear model. Both export ONE ONNX file that serves without torch.

Feature kinds: ``minilm.mean`` (384-d, mean-pooled and L2-normalised, as sentence-transformers
computes it, over the WHOLE text: 256-token chunks pooled token-weighted, see :func:`encoder_path`;
long documents were cut at 128 tokens before) and ``text.raw`` (the strings themselves, for TF-IDF).
"""

from __future__ import annotations

import abc
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from ..storage.files import atomic_write

from ..codecs import texts
from ..kernel.errors import Invalid
from ..kernel.onnx_session import session_options
from . import _onnx
from .base import Learner, ProgressFn, register
from .linear import fit_logreg

__all__ = ["TEXT_EMBED", "TEXT_RAW", "TextEncoder", "TextEmbeddingLogReg", "TfidfLogReg", "encoder_path"]

TEXT_EMBED = "minilm.mean"
TEXT_RAW = "text.raw"
EMBED_DIM = 384
_SESSIONS: dict[str, object] = {}
_LOCK = threading.Lock()


def _encoder_id() -> str:
    weights = texts.minilm_dir() / "model.safetensors"
    return hashlib.sha256(f"{weights.stat().st_size}:{texts.CHUNKED_PREPROCESSING}:v1".encode()).hexdigest()[:12]


def encoder_path(cache_dir: str | os.PathLike) -> Path:
    """MiniLM exported to ONNX once per cache dir: (chunk_tokens, chunk_token_mask) → embedding.

    The inputs are :func:`dyntrain.codecs.texts.tokenize_chunk_grid`'s [N, C, L]: the graph runs
    MiniLM on each chunk and mean-pools over every real token of every chunk (so a chunk counts by
    its length), then L2-normalises — the whole text, however long, in one vector. L is dynamic:
    a batch of short texts is padded to its longest chunk, not to 256 tokens.
    """
    path = Path(cache_dir) / "text" / f"minilm-{_encoder_id()}.onnx"
    if path.exists():
        return path
    import torch
    from transformers import BertModel

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel.from_pretrained(str(texts.minilm_dir()), local_files_only=True)

        def forward(self, chunk_tokens, chunk_token_mask):
            length = chunk_tokens.shape[2]  # traced as a dynamic dimension (dynamic_axes below)
            hidden = self.bert(input_ids=chunk_tokens.reshape(-1, length),
                               attention_mask=chunk_token_mask.reshape(-1, length)).last_hidden_state
            hidden = hidden.reshape(chunk_tokens.shape[0], -1, hidden.shape[-1])  # [N, C × L, 384]
            mask = chunk_token_mask.reshape(chunk_tokens.shape[0], -1).unsqueeze(-1) > 0
            # where, not a product: an all-padding chunk's outputs must not reach the mean at all.
            total = torch.where(mask, hidden, torch.zeros_like(hidden)).sum(1)
            mean = total / mask.sum(1).to(hidden.dtype).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    path.parent.mkdir(parents=True, exist_ok=True)
    ids, mask = texts.tokenize_chunk_grid(["an example sentence", "two chunks " * 200])
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx")
    os.close(fd)
    axes = {0: "n", 1: "chunks", 2: "length"}
    with torch.no_grad():
        torch.onnx.export(Encoder().eval(), (torch.from_numpy(ids), torch.from_numpy(mask)), tmp,
                          input_names=["chunk_tokens", "chunk_token_mask"], output_names=["embedding"],
                          dynamic_axes={"chunk_tokens": axes, "chunk_token_mask": axes, "embedding": {0: "n"}},
                          opset_version=17, dynamo=False)
    os.replace(tmp, path)
    return path


class TextEncoder:
    """Sentence embeddings on ONNX Runtime, cached on disk per content key."""

    def __init__(self, cache_dir: str | os.PathLike, threads: int = 2, batch_size: int = 32):
        self.cache_dir, self.threads, self.batch_size = Path(cache_dir), threads, batch_size
        self.computed = 0

    def _session(self):
        import onnxruntime as ort

        path = str(encoder_path(self.cache_dir))
        with _LOCK:
            if path not in _SESSIONS:
                _SESSIONS[path] = ort.InferenceSession(path, session_options(self.threads),
                                                       providers=["CPUExecutionProvider"])
        return _SESSIONS[path]

    def embed(self, batch: list[str]) -> np.ndarray:
        from ..serving.inputs import model_feed  # the very feed serving builds: served == trained

        feed = model_feed(["chunk_tokens", "chunk_token_mask"], batch)
        return self._session().run(None, feed)[0].astype(np.float32)

    def features(self, keys: list[str], load: Callable[[str], str],
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        folder = self.cache_dir / "features" / TEXT_EMBED / _encoder_id()
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, np.ndarray] = {}
        for key in set(keys):
            try:
                arr = np.load(folder / f"{key}.npy")
                if arr.shape == (EMBED_DIM,) and np.isfinite(arr).all():
                    out[key] = arr
            except (OSError, ValueError):
                pass  # missing or corrupt: recomputed below
        todo = [k for k in dict.fromkeys(keys) if k not in out]
        # Batches of similar length: a batch is padded to its longest text's chunks.
        loaded = {k: load(k) for k in todo}
        todo.sort(key=lambda k: len(loaded[k]))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for key, vec in zip(chunk, self.embed([loaded[k] for k in chunk])):
                atomic_write(folder / f"{key}.npy", lambda f, v=vec: np.save(f, v), fsync=False)
                out[key] = vec
                self.computed += 1
            if progress is not None:
                progress((start + len(chunk)) / len(todo))
        return np.stack([out[k] for k in keys]) if keys else np.zeros((0, EMBED_DIM), np.float32)


def _check(C, class_weight) -> None:
    if not (isinstance(C, (int, float)) and C > 0):
        raise Invalid(f"C must be a positive number, got {C!r}")
    if class_weight not in (None, "balanced"):
        raise Invalid(f"class_weight must be None or 'balanced', got {class_weight!r}")


class _TextLogReg(Learner):
    """Logistic regression on some text representation; subclasses say which (``_features``)
    and how to build it inside the ONNX graph (``_front``)."""

    C: float
    class_weight: str | None

    @abc.abstractmethod
    def _features(self, X, fitting: bool) -> np.ndarray:
        """The representation the logistic regression sees (``fitting``: learn its vocabulary)."""

    @abc.abstractmethod
    def _front(self, backbone_dir):
        """(ONNX model from the raw input to the features, name of its features output)."""

    def fit(self, X, y, *, n_classes, sample_weight=None, progress: ProgressFn | None = None):
        _check(self.C, self.class_weight)
        if progress is not None:
            progress(0.0)
        self.coef_, self.intercept_ = fit_logreg(self._features(X, fitting=True), np.asarray(y), n_classes, C=self.C,
                                                 class_weight=self.class_weight, sample_weight=sample_weight)
        self.n_classes_ = int(n_classes)
        if progress is not None:
            progress(1.0)
        return self

    def predict_proba(self, X):
        self._check_fitted()
        logits = self._features(X, fitting=False) @ self.coef_.T + self.intercept_
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def export_onnx(self, path, *, backbone_dir=None):
        """raw input → features (``_front``) → linear → softmax, merged into one file."""
        self._check_fitted()
        import onnx
        import torch
        from onnx import compose

        from . import _nets

        front, features = self._front(backbone_dir)
        head = _nets.SoftmaxLinear(torch.from_numpy(self.coef_), torch.from_numpy(self.intercept_))
        head_bytes = _nets.onnx_bytes(head, torch.zeros(1, self.coef_.shape[1]), input_name="features",
                                      output_names=[_onnx.OUTPUT_NAME])
        head_model = _same_opsets(compose.add_prefix(onnx.load_from_string(head_bytes), "head/",
                                                     rename_outputs=False), front)
        merged = compose.merge_models(front, head_model, io_map=[(features, head_model.graph.input[0].name)],
                                      outputs=[_onnx.OUTPUT_NAME], producer_name="dyntrain")
        return _nets.save_onnx_bytes(merged.SerializeToString(), path)


@register
class TextEmbeddingLogReg(_TextLogReg):
    """Logistic regression on MiniLM sentence embeddings (good with few examples per class)."""

    name = "text.embedding_logreg"
    input_kind = TEXT_EMBED

    def __init__(self, *, C: float = 10.0, class_weight: str | None = None) -> None:
        super().__init__()
        self.C, self.class_weight = C, class_weight

    def _features(self, X, fitting):
        return np.asarray(X, np.float32)

    def _front(self, backbone_dir):
        import onnx

        return onnx.load(str(encoder_path(backbone_dir))), "embedding"


@register
class TfidfLogReg(_TextLogReg):
    """TF-IDF of words + logistic regression (strong once there are many examples).

    Unigrams, plain term frequency: with word pairs or sublinear tf, skl2onnx's graph differs
    from scikit-learn by up to 0.02 in probability (measured), and a served model must give
    exactly what was measured.
    """

    name = "text.tfidf_logreg"
    input_kind = TEXT_RAW

    def __init__(self, *, C: float = 10.0, min_df: int = 1, class_weight: str | None = None) -> None:
        super().__init__()
        self.C, self.min_df, self.class_weight = C, min_df, class_weight

    def _features(self, X, fitting):
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts_ = [str(t) for t in X]
        if fitting:
            self.vectorizer_ = TfidfVectorizer(min_df=int(self.min_df), lowercase=True,
                                               token_pattern=r"(?u)\b\w\w+\b").fit(texts_)
        return self.vectorizer_.transform(texts_).toarray().astype(np.float32)

    def _front(self, backbone_dir):
        from onnx import compose
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import StringTensorType

        # locale "C": ONNX Runtime's StringNormalizer would otherwise need en_US.UTF-8 installed;
        # tokenexp: the same words scikit-learn's token_pattern finds.
        front = convert_sklearn(self.vectorizer_, initial_types=[("text", StringTensorType([None, 1]))],
                                target_opset=17,
                                options={id(self.vectorizer_): {"locale": "C", "tokenexp": r"\w\w+"}})
        front = compose.add_prefix(front, "tfidf/", rename_inputs=False)
        return front, front.graph.output[0].name


def _same_opsets(model, like):
    """merge_models needs equal versions of shared opset domains."""
    import onnx

    wanted = {o.domain: o.version for o in like.opset_import}
    if model.opset_import[0].version != wanted.get("", model.opset_import[0].version):
        model = onnx.version_converter.convert_version(model, wanted[""])
    for o in like.opset_import:
        if o.domain not in {x.domain for x in model.opset_import}:
            model.opset_import.append(onnx.helper.make_opsetid(o.domain, o.version))
    return model
