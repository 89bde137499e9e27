"""Dataset wrappers and collate."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lsm_train.data.dataset import FolderDataset, ProceduralDataset, collate
from lsm_train.data.sample import save_sample


def test_procedural_dataset_is_deterministic_and_collates():
    ds = ProceduralDataset(4, seed=7, size=(24, 32))
    a, b = ds[2], ProceduralDataset(4, seed=7, size=(24, 32))[2]
    np.testing.assert_array_equal(a.context[1].image, b.context[1].image)
    assert not np.array_equal(ds[1].context[0].image, a.context[0].image)
    assert not np.array_equal(ProceduralDataset(4, seed=8, size=(24, 32))[2].context[0].image, a.context[0].image)
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate)))
    assert batch["images"].shape == (2, 3, 3, 24, 32) and batch["images"].dtype == torch.float32
    assert 0 <= batch["images"].min() and batch["images"].max() <= 1
    assert batch["depth"].shape == (2, 3, 24, 32) and bool(batch["valid"].all())
    assert batch["labels"].dtype == torch.int64 and int(batch["labels"].max()) < 8
    assert batch["K"].shape == (2, 3, 3, 3) and batch["c2w"].shape == (2, 3, 4, 4)
    assert batch["num_context"] == 2 and batch["class_names"][1] == "floor"
    first = ds[0]
    np.testing.assert_array_equal(batch["images"][0, 2].permute(1, 2, 0).mul(255).round().byte().numpy(),
                                  first.target[0].image)
    with pytest.raises(IndexError):
        ds[4]


def test_views_per_room_share_the_room():
    ds = ProceduralDataset(4, seed=1, size=16, views_per_room=2)
    m = [ds[i].meta for i in range(4)]
    assert m[0]["room_seed"] == m[1]["room_seed"] != m[2]["room_seed"] == m[3]["room_seed"]
    assert not np.allclose(ds[0].context[0].c2w, ds[1].context[0].c2w)


def test_folder_dataset_and_collate_errors(tmp_path):
    ds = ProceduralDataset(2, seed=3, size=16)
    for i in range(2):
        save_sample(ds[i], str(tmp_path / f"{i:04d}"))
    fd = FolderDataset(str(tmp_path))
    assert len(fd) == 2
    np.testing.assert_array_equal(fd[1].context[0].image, ds[1].context[0].image)
    batch = collate([fd[0], fd[1]])
    assert batch["images"].shape == (2, 3, 3, 16, 16)
    with pytest.raises(ValueError):
        collate([fd[0], ProceduralDataset(1, seed=3, size=20)[0]])
    with pytest.raises(ValueError):
        collate([])
    with pytest.raises(ValueError):
        FolderDataset(str(tmp_path / "missing"))


def test_batches_unproject_with_lsm_geometry_conventions():
    """Collated depth/K/c2w + lsm.geometry pointmaps put floor pixels on z = 0 and walls inside the room."""
    from lsm.geometry.pointmaps import depth_to_pointmap

    ds = ProceduralDataset(2, seed=5, size=(32, 40))
    batch = collate([ds[0], ds[1]])
    for b in range(2):
        room = np.array(batch["meta"][b]["room_size"])
        for v in range(3):
            pts = depth_to_pointmap(batch["depth"][b, v][None], batch["K"][b, v], batch["c2w"][b, v])[0]
            floor = batch["labels"][b, v] == 1
            assert floor.sum() > 20
            assert float(pts[floor][:, 2].abs().max()) < 2e-3
            wall = batch["labels"][b, v] == 0
            inside = (pts[wall] > -2e-3).all(1) & (pts[wall] < torch.tensor(room, dtype=torch.float32) + 2e-3).all(1)
            assert bool(inside.all())
