"""The shipped embedded model on procedural scenes it never saw in training.

Training used items 0 .. 1,799 of ``ProceduralDataset(seed=0)`` and the first few thousand
(32,000 for seed 29) items of ``ProceduralDataset(seed=s)`` for s in 2, 5 .. 17, 22 .. 26,
28 .. 31 (other scenes: the per-item seed hashes the dataset seed; the README lists every
stage); these tests use items 100000 .. 100015 of ``seed=0`` (the held-out seeds
``lsm-eval`` uses by default), evaluated with the paper's protocol
(``lsm_train.evaluation.evaluate``).  Thresholds are the issue's targets; the measured values are
in the README.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

HELD_OUT = range(100000, 100016)
TARGETS = {  # metric: (direction, issue threshold)
    "abs_rel": ("max", 0.15),
    "tau": ("min", 0.50),
    "source_miou": ("min", 0.50),
    "psnr": ("min", 20.0),
}
# Targets the shipped model does not reach yet (measured on HELD_OUT, see the README): the
# tests below are strict expected failures, so reaching a target turns them into a failure
# that asks for this table to be updated.
NOT_REACHED = {"tau": 0.300}
# What the shipped model must not fall below (measured minus a margin): catches a broken
# or wrongly loaded model (random weights: mIoU ~0.05, AbsRel ~0.5, PSNR ~10).
FLOORS = {"abs_rel": ("max", 0.14), "tau": ("min", 0.25), "source_miou": ("min", 0.57),
          "source_accuracy": ("min", 0.84), "psnr": ("min", 19.5)}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary(embedded):
    from lsm_train.data import dataset as ds
    from lsm_train.data.sample import CLASS_NAMES
    from lsm_train.evaluation.evaluate import evaluate_batch, summarise

    torch.manual_seed(0)
    model = embedded.model
    emb = embedded.text_encoder.encode(list(CLASS_NAMES))
    data = ds.ProceduralDataset(num_samples=10 ** 9, seed=0, size=model.config.image_size)
    items = [data[i] for i in HELD_OUT]
    rows = []
    for i in range(0, len(items), 4):
        rows += evaluate_batch(model, ds.collate(items[i:i + 4]), emb)[0]
    s = summarise(rows)
    print({k: round(v, 4) for k, v in s.items() if v is not None})
    return s


@pytest.mark.parametrize("metric", [
    pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=f"target not reached yet: "
                                                                f"measured {NOT_REACHED[m]}"))
    if m in NOT_REACHED else m for m in TARGETS])
def test_held_out_quality_reaches_the_target(summary, metric):
    direction, threshold = TARGETS[metric]
    value = summary[metric]
    if direction == "max":
        assert value <= threshold, f"{metric} {value:.4f} > {threshold}"
    else:
        assert value >= threshold, f"{metric} {value:.4f} < {threshold}"


@pytest.mark.parametrize("metric", list(FLOORS))
def test_held_out_quality_stays_above_the_shipped_floor(summary, metric):
    direction, bound = FLOORS[metric]
    value = summary[metric]
    assert (value <= bound) if direction == "max" else (value >= bound), (metric, value, bound)


def _scenes_showing(class_name, count=4, min_fraction=0.08):
    """Held-out procedural samples (seeds 200000+) whose reference view shows enough of a class."""
    from lsm_train.data.procedural import generate_sample
    from lsm_train.data.sample import CLASS_NAMES

    c = CLASS_NAMES.index(class_name)
    found = []
    for seed in range(200000, 200080):
        sample = generate_sample(seed, size=128)
        if (sample.context[0].labels == c).mean() >= min_fraction:
            found.append((sample, sample.context[0].labels == c))
            if len(found) == count:
                return found
    raise AssertionError(f"not enough held-out scenes with a large {class_name} in view")


@pytest.fixture(scope="module")
def embedded():
    from lsm.perception import Perception

    return Perception.load(device="cpu")


def test_synonym_query_lands_on_the_sofa(embedded):
    """'couch' is not in the vocabulary; its mask (default threshold) must fall on the sofa."""
    from lsm_train.data.sample import CLASS_NAMES

    ious = []
    for sample, truth in _scenes_showing("sofa"):
        rec = embedded.reconstruct([(sample.context[0].image, sample.context[1].image)])[0]
        result = embedded.query(rec, "couch", list(CLASS_NAMES), view=0, threshold=0.5)
        mask = result.mask_original > 0 if result.found else np.zeros_like(truth)
        ious.append(float((mask & truth).sum() / max(1, (mask | truth).sum())))
    print("couch IoU with the sofa pixels:", [round(x, 2) for x in ious])
    assert np.mean(ious) > 0.3, ious


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive pixel outscores a negative one."""
    ranks = np.empty(scores.size)
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, scores.size + 1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.mark.parametrize("word,class_name", [("couch", "sofa"), ("desk", "table"),
                                             ("armchair", "chair")])
def test_words_outside_the_vocabulary_rank_their_class_first(embedded, word, class_name):
    """Out-of-vocabulary words: the rendered features' cosine with the word's text embedding
    ranks the right class's pixels above the rest far better than chance (AUC 0.5)."""
    aucs = []
    for sample, truth in _scenes_showing(class_name):
        rec = embedded.reconstruct([(sample.context[0].image, sample.context[1].image)])[0]
        cos = torch.einsum("dhw,d->hw", embedded.feature_map(rec, 0),
                           embedded.text_embeddings([word])[0])
        aucs.append(_auc(cos.numpy().reshape(-1), truth.reshape(-1)))
    print(f"{word!r} -> {class_name} AUC per scene:", [round(a, 3) for a in aucs])
    assert np.mean(aucs) > 0.8, aucs


def test_held_out_pair_poses_are_near_the_truth(embedded):
    """Relative poses (what the node publishes) on 24 held-out pairs, ~16 cm baselines.

    Medians, because single pairs vary: the translation direction of a short baseline is
    ill-conditioned (a few degrees of rotation error shift it by tens of degrees).  Measured
    with the shipped model: rotation 3.2 deg, translation direction 19 deg; a wrong pose
    convention (inverted c2w, swapped axes) gives about 90-180 deg.
    """
    from lsm_train.evaluation.poses import pair_pose_errors

    rotation, direction = pair_pose_errors(embedded.model)
    print(f"rotation error median {np.median(rotation):.1f} deg, translation direction "
          f"median {np.median(direction):.1f} deg, within 45 deg {np.mean(direction < 45):.0%}")
    assert np.median(rotation) < 6.0, rotation
    assert np.median(direction) < 30.0, direction
    assert np.mean(direction < 45.0) >= 0.75, direction
