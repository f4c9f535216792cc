"""Recommendation core: metrics by hand, learners against random and popularity on a
latent-factor set, the served artefact against the in-memory model, cold start, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dyntrain.kernel.errors import Invalid
from dyntrain.learners.recommend import (
    Interactions,
    RecCandidate,
    describe,
    export_recommender,
    fit_recommender,
    load_recommender,
    ranking_metrics,
    retrain_recommender,
    temporal_split,
)
from dyntrain.learners.recommend_models import fit_learner
from dyntrain.learners.recommend_serving import top_k
from dyntrain.learners.recommend_synthetic import synthetic_interactions

LEARNERS = ("popularity", "content", "item_knn", "als")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def implicit_set():
    data, features, _ = synthetic_interactions(600, 300, 15000, seed=1)
    return data, features, temporal_split(data)


@pytest.fixture(scope="module")
def rating_set():
    data, features, _ = synthetic_interactions(600, 300, 15000, seed=2, ratings=True)
    return data, features, temporal_split(data)


@pytest.fixture(scope="module")
def fitted(implicit_set):
    """Each learner fitted once on the training part of the split."""
    data, features, split = implicit_set
    return {name: fit_learner(name, split.train, item_features=features, seed=0) for name in LEARNERS}


@pytest.fixture(scope="module")
def split_scores(implicit_set, fitted):
    _, _, split = implicit_set
    rng = np.random.default_rng(0)
    random_scores = rng.random((len(split.test_users), split.train.n_items))
    out = {name: ranking_metrics(m, split) for name, m in fitted.items()}
    out["random"] = ranking_metrics(random_scores, split)
    return out


# ---------------------------------------------------------------------------- metrics by hand
def _hand_split():
    # A: i0@1 i1@2 i2@3, B: i3@1 i4@2, C: i1@1 i0@2; item i5 is in the catalogue only.
    users = ["A", "A", "A", "B", "B", "C", "C"]
    items = ["i0", "i1", "i2", "i3", "i4", "i1", "i0"]
    times = [1, 2, 3, 1, 2, 1, 2]
    data = Interactions.from_columns(users, items, timestamps=times,
                                     item_ids=["i0", "i1", "i2", "i3", "i4", "i5"])
    # Half held out: A keeps i0 and is tested on {i1, i2}; B on {i4}; C on {i0}.
    return data, temporal_split(data, holdout_fraction=0.5)


def test_temporal_split_holds_out_each_users_latest():
    data, split = _hand_split()
    assert [data.user_ids[u] for u in split.test_users] == ["A", "B", "C"]
    relevant = [sorted(data.item_ids[i] for i in split.relevant(k)) for k in range(3)]
    assert relevant == [["i1", "i2"], ["i4"], ["i0"]]
    assert split.train.n == 3 and split.held_out == 4


def test_metrics_match_a_hand_computed_case():
    data, split = _hand_split()
    # Rows A, B, C; columns i0..i5; 9 marks the item each user trained on (excluded).
    scores = np.array([[9, 5, 3, 0, 4, -1],     # A: i1 i4 i2   -> hits at ranks 1 and 3
                       [3, 2, 1, 9, 0, -1],     # B: i0 i1 i2   -> no hit (wanted i4)
                       [5, 9, 1, 0.5, 0, -1]],  # C: i0 i2 i3   -> hit at rank 1
                      dtype=float)
    m = ranking_metrics(scores, split, k=3)
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg"] == pytest.approx((ndcg_a + 0 + 1) / 3)
    assert m["precision"] == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)
    assert m["recall"] == pytest.approx((1 + 0 + 1) / 3)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0 + 1) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    assert m["coverage"] == pytest.approx(5 / 6)  # i5 is never recommended
    # Train counts: i0, i1, i3 had one user each (of 3), i2 and i4 none; p = (count + 1) / 4.
    assert m["novelty"] == pytest.approx((1 + 2 + 2 + 1 + 1 + 2 + 1 + 1 + 2) / 9)
    # Mean share of users of the recommended items (5/3 over 9) / that of the chosen ones (1/6).
    assert m["popularity_bias"] == pytest.approx((5 / 3 / 9) / (1 / 6))
    assert set(m) == {"ndcg", "precision", "recall", "map", "coverage", "novelty", "popularity_bias", "hit_rate"}


def test_perfect_and_hopeless_scores_bound_the_metrics():
    data, split = _hand_split()
    perfect = np.zeros((3, 6))
    for k in range(3):
        perfect[k, split.relevant(k)] = 1.0
    assert ranking_metrics(perfect, split, k=3)["ndcg"] == pytest.approx(1.0)
    hopeless = np.ones((3, 6))
    for k in range(3):
        hopeless[k, split.relevant(k)] = -np.inf
    m = ranking_metrics(hopeless, split, k=3)
    assert m["ndcg"] == 0 and m["hit_rate"] == 0


def test_plain_words_follow_the_numbers():
    text = describe({"hit_rate": 0.61}, {"hit_rate": 0.29})
    assert text == ("for 6 in 10 people, something they chose next was in their top 10; "
                    "the simple 'most popular' list manages 3 in 10")
    assert "4 in 100" in describe({"hit_rate": 0.04}, None)


def test_top_k_orders_and_skips_excluded():
    s = np.array([0.5, -np.inf, 2.0, 0.5, 1.0])
    best = top_k(s, 3).tolist()
    assert best[:2] == [2, 4] and best[2] in (0, 3)  # a tie at the cut: either, never the -inf
    assert top_k(s, 10).tolist() == [2, 4, 0, 3]


# ---------------------------------------------------------------------------- learners
def test_popularity_beats_random(split_scores):
    assert split_scores["popularity"]["ndcg"] > split_scores["random"]["ndcg"] + 0.03


@pytest.mark.parametrize("learner", ["content", "item_knn", "als"])
def test_learner_beats_random_and_popularity(split_scores, learner):
    # Tastes are latent factors and the features a noisy view of the item factors, so every
    # personalised learner should clearly beat the one list for everyone.
    assert split_scores[learner]["ndcg"] > split_scores["popularity"]["ndcg"] + 0.03
    assert split_scores[learner]["ndcg"] > split_scores["random"]["ndcg"] + 0.05
    assert split_scores[learner]["coverage"] > split_scores["popularity"]["coverage"]


def test_svd_predicts_held_out_ratings_better_than_the_average(rating_set):
    data, _, split = rating_set
    model = fit_learner("svd", split.train)
    # Held-out ratings: rows of the full data whose (user, item) is not in the training part.
    seen = split.train.matrix()
    test = np.asarray(seen[data.users, data.items]).ravel() == 0
    users = [data.user_ids[u] for u in data.users[test]]
    items = [data.item_ids[i] for i in data.items[test]]
    truth = data.ratings[test]
    pred = np.array([model.predict_rating(u, [i])[0] for u, i in zip(users, items)])
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    mean_rmse = float(np.sqrt(np.mean((split.train.ratings.mean() - truth) ** 2)))
    assert rmse < 0.9 * mean_rmse
    with pytest.raises(Invalid, match="predicts no ratings"):
        fit_learner("popularity", split.train).predict_rating(users[0], items[:1])


# ---------------------------------------------------------------------------- selection
@pytest.fixture(scope="module")
def selected(implicit_set):
    data, features, _ = implicit_set
    return fit_recommender(data, item_features=features, time_budget_s=120, seed=0)


def test_selection_picks_within_noise_of_the_best(selected):
    model, report = selected
    scores = {c["name"]: c["metrics"]["ndcg"] for c in report["candidates"]}
    assert set(c["learner"] for c in report["candidates"]) == {"popularity", "content", "item_knn", "als"}
    best = max(scores.values())
    chosen = report["candidates"][report["chosen"]["index"]]
    assert chosen["metrics"]["ndcg"] >= best - chosen["se_vs_best"] - 1e-12
    assert model.meta["learner"] == report["chosen"]["learner"]
    assert report["baseline"]["ndcg"] == scores["popularity"]
    assert report["summary"].startswith("for ") and "most popular" in report["summary"]
    assert report["cut_at"] is None


def test_time_budget_cuts_after_two_candidates(implicit_set):
    data, features, _ = implicit_set
    _, report = fit_recommender(data, item_features=features, time_budget_s=0.0)
    assert report["cut_at"] == 2 and len(report["candidates"]) == 2


def test_one_se_rule_prefers_the_simpler_learner_on_ties(implicit_set):
    data, _, _ = implicit_set
    # The same learner twice can only tie: the first (cheaper position) wins.
    cands = [RecCandidate("item_knn", {"K": 50}), RecCandidate("item_knn", {"K": 50}), RecCandidate("popularity")]
    _, report = fit_recommender(data, candidates=cands, time_budget_s=60)
    assert report["chosen"]["index"] == 0


def test_progress_is_reported_and_can_cancel(implicit_set):
    from dyntrain.kernel.errors import Cancelled

    data, _, _ = implicit_set
    seen = []
    fit_recommender(data, candidates=[RecCandidate("popularity"), RecCandidate("item_knn")], time_budget_s=60,
                    progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "chose" in seen[-1][1]

    def cancel(fraction, message):
        if "item_knn" in message:
            raise Cancelled("a newer dataset version arrived")

    with pytest.raises(Cancelled):
        fit_recommender(data, candidates=[RecCandidate("popularity"), RecCandidate("item_knn")],
                        time_budget_s=60, progress=cancel)


def test_ratings_add_the_svd_candidate(rating_set):
    data, _, _ = rating_set
    _, report = fit_recommender(data, time_budget_s=120)
    assert "svd" in [c["learner"] for c in report["candidates"]]
    assert report["explicit"] is True


# ---------------------------------------------------------------------------- served artefact
@pytest.mark.parametrize("learner", LEARNERS)
def test_exported_artefact_answers_like_the_model(tmp_path, fitted, learner):
    model = fitted[learner]
    path = export_recommender(model, tmp_path / f"{learner}.npz")
    served = load_recommender(path)
    assert served.kind == model.kind and served.meta["learner"] == learner
    for user in [0, 5, 77, 599, "nobody"]:
        for kwargs in ({}, {"exclude_seen": False}, {"allowed_items": list(range(0, 300, 3))},
                       {"history": [1, 2, 3]}):
            a, b = model.recommend(user, 10, **kwargs), served.recommend(user, 10, **kwargs)
            assert a["items"] == b["items"] and a["source"] == b["source"]
            np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-6)
    for item in [0, 17, 299, "unknown"]:
        assert model.similar(item, 5)["items"] == served.similar(item, 5)["items"]


def test_serving_module_needs_no_training_library():
    import subprocess
    import sys

    # the serving path too: the hot-swap loader, the task plug-in that opens the .npz, the answers
    code = ("import sys; import dyntrain.learners.recommend_serving as s; import dyntrain.serving.live; "
            "import dyntrain.serving.recommend; import dyntrain.tasks.recommend; "
            "bad = [m for m in ('torch', 'implicit', 'surprise', 'sklearn') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_exclude_seen_and_allowed_items(implicit_set, fitted):
    data, _, split = implicit_set
    model = fitted["als"]
    user = split.train.user_ids[int(split.test_users[0])]
    seen = {split.train.item_ids[i] for i in model.history(model.user_index(user))[0]}
    rec = model.recommend(user, 20)
    assert not seen & set(rec["items"]) and len(rec["items"]) == 20
    assert rec["scores"] == sorted(rec["scores"], reverse=True)
    with_seen = model.recommend(user, 300, exclude_seen=False)
    assert seen <= set(with_seen["items"])
    allowed = [i for i in range(300) if i % 7 == 0]
    only = model.recommend(user, 10, allowed_items=allowed + ["not-an-item"])
    assert set(only["items"]) <= set(allowed) and len(only["items"]) == 10
    # Fewer allowed unseen items than asked for: the answer is shorter, never padded.
    few = [i for i in allowed if i not in seen][:3]
    assert sorted(model.recommend(user, 10, allowed_items=few)["items"]) == sorted(few)


def test_unknown_user_gets_popular_or_history_based_answers(fitted, implicit_set):
    _, _, split = implicit_set
    counts = split.train.item_user_counts()
    for name, model in fitted.items():
        rec = model.recommend("someone new", 5)
        assert rec["source"] == "popular"
        assert rec["items"] == [int(i) for i in np.argsort(-counts, kind="stable")[:5]]
        if name != "popularity":
            by_history = model.recommend("someone new", 5, history=[3, 4])
            assert by_history["source"] == "model" and not {3, 4} & set(by_history["items"])
            assert by_history["items"] != rec["items"]


def test_unknown_and_cold_items(implicit_set):
    data, features, _ = implicit_set
    # Item 299 loses its interactions: it stays in the catalogue, cold.
    keep = data.items != 299
    cold_data = data.subset(keep)
    plain = fit_learner("als", cold_data, seed=0)
    assert plain.similar(299, 5)["source"] == "popular"
    assert 299 not in plain.recommend(0, 50)["items"]  # no evidence: ranked after every other item
    hybrid = fit_learner("als", cold_data, item_features=features, seed=0)
    # With features the cold item gets factors mapped from them: similar items come from the model.
    sim = hybrid.similar(299, 5)
    assert sim["source"] == "model" and 299 not in sim["items"]
    # The feature map puts the cold item's factors near those of items with similar features.
    F = features / np.linalg.norm(features, axis=1, keepdims=True)
    content_nb = set(np.argsort(-(F @ F[299]))[1:31].tolist())
    assert len(content_nb & set(sim["items"])) >= 2
    # A brand-new item id: content neighbours of its feature vector, else popular.
    new = hybrid.similar("new-item", 5, features=features[17])
    assert new["source"] == "content" and new["items"][0] == 17
    assert hybrid.similar("new-item", 5)["source"] == "popular"
    with pytest.raises(Invalid, match="feature vector has 3 values"):
        hybrid.similar("new-item", 5, features=[1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------- incremental
def test_warm_retrain_continues_from_the_previous_factors(implicit_set):
    data, _, split = implicit_set
    train = split.train
    # The model in service saw all but the last 1% of the training interactions.
    older = train.subset(train.times < np.quantile(train.times, 0.99))
    previous = fit_learner("als", older, seed=0)
    warm = fit_learner("als", train, seed=0, warm=previous)
    assert warm.meta["warm_start"] == {"users": previous.n_users, "items": previous.n_items}
    assert warm.meta["params"]["warm_iterations"] < warm.meta["params"]["iterations"]
    # Neither saw the held-out interactions: a few warm sweeps do as well as a cold fit.
    cold = fit_learner("als", train, seed=0)
    assert cold.meta["warm_start"] is None
    warm_ndcg, cold_ndcg = ranking_metrics(warm, split)["ndcg"], ranking_metrics(cold, split)["ndcg"]
    assert warm_ndcg >= cold_ndcg - 0.02


def test_retrain_recommender_handles_new_users_and_items(implicit_set):
    data, _, _ = implicit_set
    previous = fit_learner("als", data, seed=0)
    grown = Interactions.from_columns(
        [data.user_ids[u] for u in data.users] + ["new-user", "new-user", 0],
        [data.item_ids[i] for i in data.items] + [5, "new-item", "new-item"],
        timestamps=np.concatenate([data.times, [2e7, 2e7 + 1, 2e7 + 2]]))
    model, report = retrain_recommender(previous, grown, seed=0)
    assert model.meta["warm_start"] == {"users": previous.n_users, "items": previous.n_items}
    assert report["warm_start"] and report["learner"] == "als"
    assert model.recommend("new-user", 5)["source"] == "model"
    assert "new-item" in model.item_ids()
    # The gate's figures come from a cold fit on the split (the old model saw its held-out part).
    assert report["metrics"]["ndcg"] > report["baseline"]["ndcg"]
    assert report["summary"].startswith("for ")


def test_metrics_of_a_model_trained_on_other_ids(implicit_set, fitted):
    """The gate scores the served model on a new split whose id lists differ."""
    data, _, split = implicit_set
    model = fitted["item_knn"]
    same = ranking_metrics(model, split)
    # Same interactions, ids listed in another order: the answers must not change.
    rng = np.random.default_rng(0)
    users = rng.permutation(data.n_users)
    shuffled = Interactions.from_columns([data.user_ids[u] for u in data.users],
                                         [data.item_ids[i] for i in data.items], timestamps=data.times,
                                         user_ids=[data.user_ids[u] for u in users],
                                         item_ids=[data.item_ids[i] for i in rng.permutation(data.n_items)])
    other = ranking_metrics(model, temporal_split(shuffled))
    assert other["ndcg"] == pytest.approx(same["ndcg"], abs=1e-9)
    assert other["hit_rate"] == pytest.approx(same["hit_rate"], abs=1e-9)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("users, items, message", [
    ([], [], "no interactions yet: add interactions"),
    (["a", "a", "a"], ["x", "y", "z"], "one user .* add interactions of at least one more user"),
    (["a", "b", "c"], ["x", "x", "x"], "one item .* add interactions with at least one more item"),
])
def test_too_little_data_says_what_to_add(users, items, message):
    with pytest.raises(Invalid, match=message):
        fit_recommender(Interactions.from_columns(users, items), time_budget_s=10)


def test_bad_columns_say_what_is_wrong():
    with pytest.raises(Invalid, match="one user and one item per interaction"):
        Interactions.from_columns(["a", "b"], ["x"])
    with pytest.raises(Invalid, match="finite number per interaction"):
        Interactions.from_columns(["a", "b"], ["x", "y"], ratings=[1.0, float("nan")])
    with pytest.raises(Invalid, match="no user or item id"):
        Interactions.from_columns(["a", None], ["x", "y"])
    data = Interactions.from_columns(["a", "a", "b", "b"], ["x", "y", "x", "z"])
    with pytest.raises(Invalid, match="one row per item id"):
        fit_recommender(data, item_features=np.zeros((2, 4)), time_budget_s=10)
    with pytest.raises(Invalid, match="not a recommender artefact"):
        load_recommender(__file__)


def test_datetimes_and_string_ids(tmp_path):
    times = np.array(["2026-01-01T00:00", "2026-01-02T00:00", "2026-01-01T00:00", "2026-01-03T00:00",
                      "2026-01-02T00:00", "2026-01-04T00:00"], dtype="datetime64[m]")
    data = Interactions.from_columns(["u1", "u1", "u2", "u2", "u3", "u3"], ["a", "b", "a", "c", "b", "c"],
                                     timestamps=times)
    model, report = fit_recommender(data, time_budget_s=10)
    served = load_recommender(export_recommender(model, tmp_path / "m.npz"))
    rec = served.recommend("u1", 2)
    assert all(isinstance(i, str) for i in rec["items"]) and "a" not in rec["items"]
