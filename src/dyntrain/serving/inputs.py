"""Turning raw contents into an ONNX model's inputs — the one path training's export check
and serving share. Torch-free.

Image models take ``image`` (uint8 NHWC 224); text models take either ``text`` (strings,
TF-IDF graphs) or ``input_ids`` + ``attention_mask`` (MiniLM graphs).
"""

from __future__ import annotations

import numpy as np

from .. import imaging, texts
from ..errors import Invalid

__all__ = ["decode_content", "model_feed"]


def decode_content(kind: str, data: bytes, *, max_pixels: int = 40_000_000):
    """One item's content as the model family needs it: a uint8 image array or a string."""
    if kind == "text":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("text is not valid UTF-8") from None
        if not text.strip():
            raise Invalid("the text is empty")
        return text
    return imaging.model_input(imaging.decode_image(data, max_pixels=max_pixels))


def model_feed(input_names: list[str], items: list) -> dict[str, np.ndarray]:
    """The feed dict for a session, from decoded items (see :func:`decode_content`)."""
    if "image" in input_names:
        return {"image": np.stack(items)}
    if "text" in input_names:
        return {"text": np.array(items, dtype=object).reshape(-1, 1)}
    if "input_ids" in input_names:
        ids, mask = texts.tokenize(list(items))
        return {"input_ids": ids, "attention_mask": mask}
    raise Invalid(f"this model's inputs {input_names} are not ones dyntrain can feed")
