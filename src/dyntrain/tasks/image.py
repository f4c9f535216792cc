"""The image modality: a photo upload, decoded to uint8 RGB 224×224 for the model."""

from __future__ import annotations

from typing import Any

from .base import Modality

__all__ = ["ImageModality"]

#: Magic bytes of the formats an upload can be, for serving the original file back.
_MAGIC = ((b"\xff\xd8", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"),
          (b"BM", "image/bmp"), (b"RIFF", "image/webp"))


class ImageModality(Modality):
    kind = noun = "image"
    plural = "images"
    title = "Photos"
    upload_format = "files"
    augmentable = True
    health_checks = True
    data_template = "_data_cards.html"
    help_template = "_help_images.html"
    try_template = "_try_files.html"
    try_script = "try.js"

    def content_meta(self, settings, filename: str, data: bytes) -> dict[str, Any]:
        from ..datasets.health import phash
        from ..codecs.imaging import decode_image, image_info
        from ..kernel.limits import exceeded

        if len(data) > settings.max_upload_bytes:
            raise exceeded(f"file is {len(data)} bytes", settings.max_upload_bytes, "max_upload_bytes")
        img = decode_image(data, max_pixels=settings.max_image_pixels)
        # The perceptual hash is kept so data-health checks need not decode every image again.
        return {"filename": filename, **image_info(img), "phash": phash(img)}

    def decode(self, data: bytes, *, max_pixels: int = 40_000_000):
        from ..codecs import imaging

        return imaging.model_input(imaging.decode_image(data, max_pixels=max_pixels))

    def media_type(self, data: bytes) -> str:
        return next((kind for magic, kind in _MAGIC if data.startswith(magic)), "application/octet-stream")

    def example(self) -> bytes:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (8, 8), "gray").save(buf, "PNG")
        return buf.getvalue()

    def warmup_item(self):
        import numpy as np

        from ..codecs.imaging import INPUT_SIZE

        return np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)

    def feed(self, input_names: list[str], columns, items: list) -> dict[str, Any]:
        import numpy as np

        return {input_names[0]: np.stack(items)}

    def candidates(self, target, n_samples: int, n_classes: int, time_budget_s: float) -> list:
        from ..learners.candidates import default_candidates

        return default_candidates(n_samples, n_classes, time_budget_s)

    def features(self, kinds, hashes, load_blob, extractor, progress=None) -> dict[str, Any]:
        # Lite0 features and pixels, cached per content: a retrain embeds only what is new
        return extractor.features_by_kind(kinds, hashes, lambda h: self.decode(load_blob(h)), progress=progress)

    def input_contract(self, onnx_path) -> dict[str, Any]:
        from ..codecs import imaging

        return {"preprocessing": imaging.PREPROCESSING,
                "input": {"name": "image", "dtype": "uint8",
                          "shape": [None, imaging.INPUT_SIZE, imaging.INPUT_SIZE, 3], "layout": "NHWC RGB"}}

    def external_input(self, model, task: str) -> str:
        _one_input(model, task, "image", "one uint8 input of shape [N, 224, 224, 3] (RGB, NHWC)",
                          "UINT8", lambda dims: dims[1:] == [224, 224, 3])
        return "image"


def _one_input(model, task: str, name: str, expected: str, dtype: str, shape_ok) -> str:
    """Check that an uploaded graph has one input of ``dtype`` whose dims pass ``shape_ok``."""
    import onnx

    from ..kernel.errors import Invalid

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise Invalid(f"the model has {len(inputs)} inputs; a {task} model needs {expected}")
    elem = inputs[0].type.tensor_type.elem_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if elem != getattr(onnx.TensorProto, dtype) or not shape_ok(dims):
        raise Invalid(f"the model's input is {onnx.TensorProto.DataType.Name(elem)} {dims}; "
                      f"a {task} model needs {expected}")
    return inputs[0].name
