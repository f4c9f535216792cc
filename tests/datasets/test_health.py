"""Data health checks on real photos with planted problems."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dyntrain.datasets.health import Finding, HealthSample, check_health, hash_distance, phash
from dyntrain.kernel.errors import Invalid

from .images import colour_histogram, crops, reencoded, sha


def sample(i: int, label: str, image: Image.Image, digest: str | None = None) -> HealthSample:
    return HealthSample(i, label, digest or sha(image), image, image.width, image.height, None)


@pytest.fixture(scope="module")
def two_classes(photos) -> list[HealthSample]:
    """A clean set: 8 crops of the temple photo ('china'), 8 of the dahlia ('flower')."""
    china = crops(photos["china"], 8, seed=0)
    flower = crops(photos["flower"], 8, seed=100)
    return [sample(i, "china", im) for i, im in enumerate(china)] + [
        sample(100 + i, "flower", im) for i, im in enumerate(flower)
    ]


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def only(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def test_clean_set_has_no_findings(two_classes):
    features = np.stack([colour_histogram(s.image) for s in two_classes])
    assert check_health(two_classes, features=features) == []


def test_exact_duplicate(two_classes):
    dup = two_classes[3]
    findings = check_health(two_classes + [HealthSample(50, "china", dup.sha256, dup.image, 96, 96, None)])
    assert kinds(findings) == ["exact_duplicate"]
    assert findings[0].sample_ids == [3, 50] and findings[0].severity == "warning"
    assert "Delete the extra copies" in findings[0].advice


def test_near_duplicates_reencoded_and_resized(two_classes):
    jpeg = reencoded(two_classes[2].image, quality=60)
    smaller = two_classes[10].image.resize((80, 80), Image.BICUBIC)
    brighter = Image.eval(two_classes[5].image, lambda v: min(255, int(v * 1.08)))
    extra = [sample(60, "china", jpeg), sample(61, "flower", smaller), sample(62, "china", brighter)]
    findings = check_health(two_classes + extra)
    near = only(findings, "near_duplicate")
    assert sorted(f.sample_ids for f in near) == [[2, 60], [5, 62], [61, 102]]
    assert set(kinds(findings)) == {"near_duplicate"}


def test_distinct_images_are_not_near_duplicates(digits):
    """Upscaled 8x8 digits look alike to a perceptual hash; they are still different images."""
    samples = [sample(i, str(y), im) for i, (y, im) in enumerate(digits)]
    findings = check_health(samples, min_per_class=1, imbalance_ratio=100)
    assert only(findings, "near_duplicate") == [] and only(findings, "conflicting_labels") == []


def test_conflicting_labels_for_the_same_and_a_near_identical_image(two_classes):
    same = two_classes[1]
    resized = two_classes[12].image.resize((90, 90), Image.BILINEAR)
    extra = [
        HealthSample(70, "flower", same.sha256, same.image, 96, 96, None),  # same file, other label
        sample(71, "china", resized),  # a resized flower crop filed as china
    ]
    findings = check_health(two_classes + extra)
    conflicts = only(findings, "conflicting_labels")
    assert sorted(f.sample_ids for f in conflicts) == [[1, 70], [71, 104]]
    assert all(f.severity == "error" for f in conflicts)
    assert findings[0].kind == "conflicting_labels"  # errors first
    assert "'china': 1" in conflicts[0].message and "'flower': 70" in conflicts[0].message
    assert only(findings, "exact_duplicate") == [] and only(findings, "near_duplicate") == []


def test_tiny_and_corrupt_images(two_classes, photos):
    tiny = photos["flower"].resize((20, 16))
    extra = [
        sample(80, "flower", tiny),
        HealthSample(81, "china", "f" * 64, None, 0, 0, "corrupt or truncated image data"),
    ]
    findings = check_health(two_classes + extra)
    assert kinds(findings) == ["corrupt_image", "tiny_image"]
    corrupt, small = findings
    assert corrupt.sample_ids == [81] and corrupt.severity == "error" and "truncated" in corrupt.message
    assert small.sample_ids == [80] and "20x16" in small.message


def test_too_few_examples_and_imbalance(two_classes, digits):
    few = [sample(90 + i, "digit", im) for i, (_, im) in enumerate(digits[:2])]
    findings = check_health(two_classes + few)
    too_few = only(findings, "too_few_examples")
    assert len(too_few) == 1 and too_few[0].labels == ["digit"] and too_few[0].sample_ids == [90, 91]
    assert "only 2 usable examples" in too_few[0].message and "Add 3 or more" in too_few[0].advice
    imbalance = only(findings, "imbalance")
    assert len(imbalance) == 1 and imbalance[0].labels == ["digit"]
    assert "4.0 times fewer" in imbalance[0].message
    # one example: an error (accuracy cannot be measured); duplicates count once
    one = [sample(95, "digit", digits[0][1]), HealthSample(96, "digit", sha(digits[0][1]), digits[0][1], 64, 64, None)]
    f = only(check_health(two_classes + one), "too_few_examples")[0]
    assert f.severity == "error" and "only 1 usable example" in f.message


def test_planted_mislabelled_image(two_classes, photos):
    """A real dahlia crop filed under 'china' is found from image features alone."""
    planted = sample(99, "china", crops(photos["flower"], 1, seed=200)[0])
    samples = two_classes + [planted]
    features = np.stack([colour_histogram(s.image) for s in samples])
    findings = check_health(samples, features=features)
    assert kinds(findings) == ["likely_mislabelled"]
    (f,) = findings
    assert f.sample_ids == [99] and f.labels == ["china", "flower"]
    assert "looks more like the 'flower' examples" in f.message
    assert "relabel it as 'flower'" in f.advice
    # without features the check is skipped
    assert check_health(samples) == []


def test_features_that_do_not_separate_classes_accuse_nobody(two_classes):
    noise = np.random.default_rng(0).normal(size=(len(two_classes), 64))
    assert check_health(two_classes, features=noise) == []


def test_findings_are_json_and_inputs_are_validated(two_classes):
    dup = two_classes[0]
    findings = check_health(two_classes + [HealthSample(51, "china", dup.sha256, dup.image, 96, 96, None)])
    json.dumps([f.to_dict() for f in findings])
    with pytest.raises(Invalid):
        check_health(two_classes, features=np.zeros((3, 4)))
    with pytest.raises(Invalid):
        check_health(two_classes + [two_classes[0]])  # duplicate ids


def test_phash_format_and_robustness(photos):
    h = phash(photos["flower"])
    assert len(h) == 16 and int(h, 16) >= 0
    assert hash_distance(h, phash(reencoded(photos["flower"], 40))) <= 2
    assert hash_distance(h, phash(photos["flower"].resize((320, 213)))) <= 2
    assert hash_distance(h, phash(photos["china"])) > 16
    assert phash(photos["flower"]) == h


def test_stored_phash_is_used(two_classes):
    """The platform stores phash per sample; check_health uses it instead of recomputing."""
    a, b = two_classes[0], two_classes[1]
    # b claims a's hash: a candidate pair, but the thumbnail check still tells them apart
    fake = HealthSample(b.id, b.label, b.sha256, b.image, b.width, b.height, None, phash=phash(a.image))
    assert check_health([a, fake], min_per_class=1) == []
    jpeg = reencoded(a.image)
    stored = HealthSample(7, "china", sha(jpeg), jpeg, 96, 96, None, phash=phash(jpeg))
    assert [f.kind for f in check_health([a, stored], min_per_class=1)] == ["near_duplicate"]
    with pytest.raises(Invalid):
        check_health([a, HealthSample(8, "china", "x", a.image, 96, 96, None, phash="not-hex")])


def test_phash_matches_the_imagehash_library(photos, digits):
    import imagehash
    images = [photos["china"], photos["flower"]] + [im for _, im in digits[:20]]
    assert [phash(im) for im in images] == [str(imagehash.phash(im)) for im in images]
