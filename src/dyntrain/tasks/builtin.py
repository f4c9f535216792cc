"""The built-in tasks: images, texts and table rows, each with its target."""

from __future__ import annotations

from . import Task, register
from .boxes import BoxesTarget, PhotoModality
from .classes import ClassTarget
from .image import ImageModality
from .masks import MaskPhotoModality, MaskTarget
from .numbers import NumberTarget
from .pairs import FilterTarget, PairPhotoModality
from .recommend import InteractionModality, RankingTarget
from .table import RowModality
from .text import TextModality

# One instance each: a modality or target holds no per-project state.
IMAGE, TEXT, ROW, PHOTO, MASK_PHOTO = ImageModality(), TextModality(), RowModality(), PhotoModality(), MaskPhotoModality()
CLASS, NUMBER, BOXES, MASKS = ClassTarget(), NumberTarget(), BoxesTarget(), MaskTarget()

register(Task("image-classification", IMAGE, CLASS, "Photos (recognise what is in a picture)"),
         default_for_format=True)
register(Task("text-classification", TEXT, CLASS, "Texts (recognise what a text is about)"), default_for_format=True)
register(Task("tabular-classification", ROW, CLASS), default_for_format=True)
register(Task("tabular-regression", ROW, NUMBER))
register(Task("object-detection", PHOTO, BOXES, "Photos (find and outline things in a picture)"))
register(Task("recommendation", InteractionModality(), RankingTarget(), "Interactions (recommend items to people)"))
register(Task("semantic-segmentation", MASK_PHOTO, MASKS, "Photos (paint which pixels belong to what)"))
register(Task("image-to-image", PairPhotoModality(), FilterTarget(), "Photos (learn a picture-to-picture filter)"))
