"""The recommendation learners under the one learner contract ("recommender").

Each wraps a learner of :mod:`.recommend_models` (popularity, content, item-kNN, ALS, biased MF), so a run
record names it and its parameters like any other learner and the pipeline can check it serves
the ranking target. They learn from an :class:`~.recommend.Interactions` value, not from a
feature matrix, and their model file is the NumPy ``.npz`` artefact of
:mod:`.recommend_serving` (no ONNX: see that module for why).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..kernel.errors import Invalid
from .base import Learner, ProgressFn, register

__all__ = ["RecommenderLearner", "PopularityRecommender", "ContentRecommender", "ItemKNNRecommender",
           "ALSRecommender", "SVDRecommender", "INTERACTIONS"]

#: The input kind of every recommender: the interactions themselves.
INTERACTIONS = "interactions"


class RecommenderLearner(Learner):
    """Base of the recommendation learners: ``fit_interactions`` → ``model_`` (a Recommender)."""

    contract: ClassVar[str] = "recommender"
    input_kind: ClassVar[str] = INTERACTIONS
    #: The learner's name in :mod:`.recommend_models` (and its COMPLEXITY rank).
    core: ClassVar[str] = ""

    def fit_interactions(self, data, *, warm=None, seed: int = 0, progress: ProgressFn | None = None,
                         item_features=None):
        """Fit on all ``data``; ``warm``: a previous Recommender of this learner to start from;
        ``item_features``: one row per ``data.item_ids`` (the catalogue's item vectors, see
        :mod:`.item_features`) — every learner keeps them in its file for cold-start answers."""
        from .recommend_models import fit_learner

        if progress is not None:
            progress(0.0)
        self.model_ = fit_learner(self.core, data, self.get_params(), seed=seed, warm=warm,
                                  item_features=item_features)
        self.model_.meta.update(learner=self.core, params=self.get_params())
        self.warm_started_ = warm is not None
        if progress is not None:
            progress(1.0)
        return self

    def fit(self, X, y, *, n_classes: int = 0, sample_weight=None, progress=None):
        raise Invalid(f"{self.name} learns from interactions: call fit_interactions")

    def predict_proba(self, X):
        raise Invalid(f"{self.name} ranks items: use its model's recommend()")

    def export_onnx(self, path, *, backbone_dir=None) -> Path:
        raise Invalid(f"{self.name} is served as a NumPy artefact, not ONNX: use export()")

    def export(self, work_dir, *, backbone_dir=None) -> Path:
        """The served ``model.npz`` (format dyntrain.recommender/1)."""
        from .recommend_serving import save_recommender

        if not hasattr(self, "model_"):
            raise Invalid(f"{self.name} is not fitted yet")
        return save_recommender(self.model_, Path(work_dir) / "model.npz")

    def same_as(self, model) -> bool:
        """Whether a served Recommender was made by this learner with these parameters (then a
        retrain may start from it)."""
        meta = getattr(model, "meta", {}) or {}
        return meta.get("learner") == self.core and dict(meta.get("params") or {}) == self.get_params()


@register
class PopularityRecommender(RecommenderLearner):
    """The same most-popular list for everyone: the baseline every other learner must beat."""

    name = "rec.popularity"
    core = "popularity"

    def __init__(self) -> None:
        super().__init__()


@register
class ContentRecommender(RecommenderLearner):
    """A person's profile in item-feature space (the weighted mean of the catalogue vectors of
    what they had), items ranked by cosine to it: needs a catalogue, recommends items nobody has
    touched yet."""

    name = "rec.content"
    core = "content"

    def __init__(self) -> None:
        super().__init__()


@register
class ItemKNNRecommender(RecommenderLearner):
    """Item-item cosine on co-occurrence (``implicit``), top ``K`` neighbours per item."""

    name = "rec.item_knn"
    core = "item_knn"

    def __init__(self, *, K: int = 100) -> None:
        super().__init__()
        self.K = K


@register
class ALSRecommender(RecommenderLearner):
    """Implicit-feedback matrix factorisation by alternating least squares (``implicit``)."""

    name = "rec.als"
    core = "als"

    def __init__(self, *, factors: int = 32) -> None:
        super().__init__()
        self.factors = factors


@register
class SVDRecommender(RecommenderLearner):
    """Biased matrix factorisation of explicit ratings (``surprise``'s SVD)."""

    name = "rec.svd"
    core = "svd"

    def __init__(self, *, factors: int = 50) -> None:
        super().__init__()
        self.factors = factors
