"""Bad input to ``LSM.forward`` / ``Perception.reconstruct`` fails early with a ValueError that says
what is wrong (not a crash deep inside the network)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lsm.model.lsm import LSM


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LSM.from_config("tiny").eval()


def img(*shape, fill=0.5):
    return torch.full(shape, fill)


@pytest.mark.parametrize("a,b,match", [
    (img(3, 64, 64), img(3, 64, 64), r"\(B,3,H,W\)"),  # no batch dim
    (img(1, 4, 64, 64), img(1, 4, 64, 64), r"\(B,3,H,W\)"),  # RGBA
    (img(1, 64, 64, 3), img(1, 64, 64, 3), r"\(B,3,H,W\)"),  # channels last
    (np.zeros((1, 3, 64, 64), np.float32), img(1, 3, 64, 64), "tensor"),
    (img(1, 3, 64, 64), img(1, 3, 64, 80), "sizes differ"),
    (img(2, 3, 64, 64), img(1, 3, 64, 64), "sizes differ"),
    (img(1, 3, 60, 64), img(1, 3, 60, 64), "multiple of the patch size 16"),
    (img(1, 3, 64, 64, fill=float("nan")), img(1, 3, 64, 64), "img1 contains NaN"),
    (img(1, 3, 64, 64), img(1, 3, 64, 64, fill=float("inf")), "img2 contains NaN or infinite"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float"),
    (img(0, 3, 64, 64), img(0, 3, 64, 64), "empty"),
])
def test_forward_rejects_bad_pairs(model, a, b, match):
    with pytest.raises(ValueError, match=match):
        model(a, b)


@pytest.mark.parametrize("a,match", [
    (np.zeros((64, 64), np.uint8), "RGB image of shape"),
    (np.zeros((64, 64, 4), np.uint8), "RGB image of shape"),
    (np.zeros((0, 64, 3), np.uint8), "zero size"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    (np.full((64, 64, 3), 255.0, np.float32), r"\[0, 1\]"),
    (None, "RGB image"),
])
def test_reconstruct_rejects_bad_images(model, a, match):
    from lsm.perception import Perception

    perception = Perception(model)
    good = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        perception.reconstruct([(a, good)])
    with pytest.raises(ValueError, match=match):
        perception.reconstruct([(good, a)])


def test_reconstruct_pairs_needs_pairs(model):
    from lsm.inference import reconstruct_pairs

    with pytest.raises(ValueError, match="no image pairs"):
        reconstruct_pairs(model, [])


def test_unknown_config_name():
    with pytest.raises(ValueError, match="unknown model config 'huge'"):
        LSM.from_config("huge")
