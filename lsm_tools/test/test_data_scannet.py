"""ScanNet-style folders: write -> read round trip, label maps, pair selection."""

import numpy as np
import pytest

from lsm_train.data.procedural import generate_sequence
from lsm_train.data.scannet import ScanNetStyleDataset, ScanNetStyleScene, write_scannet_style

# NYU40-style raw ids for our classes (wall, floor, ceiling, chair, table, sofa, bed, other).
RAW = {0: 1, 1: 2, 2: 22, 3: 5, 4: 7, 5: 6, 6: 4, 7: 39}
LABEL_MAP = {raw: ours for ours, raw in RAW.items()}


@pytest.fixture(scope="module")
def frames():
    return generate_sequence(8, 7, (48, 64))


def test_write_read_same_frames(tmp_path, frames):
    write_scannet_style(str(tmp_path / "scene0"), frames)
    scene = ScanNetStyleScene(str(tmp_path / "scene0"), size=(48, 64))
    assert scene.frame_ids == list(range(7))
    for i, f in enumerate(frames):
        v = scene.load_frame(i)
        assert np.abs(v.image.astype(int) - f.image.astype(int)).mean() < 4  # JPEG tolerance
        assert np.max(np.abs(v.depth - f.depth)) <= 0.0005 + 1e-6
        np.testing.assert_array_equal(v.labels, f.labels)
        np.testing.assert_allclose(v.K, f.K, atol=1e-5)
        np.testing.assert_allclose(v.c2w, f.c2w, atol=1e-6)


def test_raw_label_ids_downscaled_depth_and_resize(tmp_path, frames):
    write_scannet_style(str(tmp_path / "s"), frames, raw_label_ids=RAW, depth_downscale=2)
    scene = ScanNetStyleScene(str(tmp_path / "s"), size=(24, 24), label_map=LABEL_MAP)
    v = scene.load_frame(3)
    f = frames[3]
    assert v.image.shape == (24, 24, 3) and v.depth.shape == (24, 24)
    # 48x64 -> 24x32 -> centre crop of 24 columns starting at 4: K halves, cx shifts by 4.
    np.testing.assert_allclose(v.K[0, 0], f.K[0, 0] / 2, rtol=1e-5)
    np.testing.assert_allclose(v.K[:2, 2], [f.K[0, 2] / 2 - 4, f.K[1, 2] / 2], atol=1e-4)
    expected_labels = f.labels[::2, 8:56:2]
    assert np.mean(v.labels == expected_labels) > 0.85
    rel = np.abs(v.depth - f.depth[::2, 8:56:2]) / f.depth[::2, 8:56:2]
    assert np.median(rel) < 0.02
    # Without a map the raw NYU ids outside our range become ignore (255).
    raw_scene = ScanNetStyleScene(str(tmp_path / "s"), size=(24, 24))
    assert np.any(raw_scene.load_frame(3).labels == 255)


def test_pair_selection_and_invalid_poses(tmp_path, frames):
    root = tmp_path / "root"
    write_scannet_style(str(root / "sceneA"), frames)
    write_scannet_style(str(root / "sceneB"), frames[:5], frame_ids=[0, 1, 2, 3, 4])
    ds = ScanNetStyleDataset(str(root), size=(48, 64), gap=2)
    # sceneA: 7 frames -> starts 0, 2, 4; sceneB: 5 frames -> starts 0, 2.
    assert len(ds) == 5
    s = ds[1]
    assert s.meta["frame_ids"] == [2, 4, 3]
    np.testing.assert_allclose(s.target[0].c2w, frames[3].c2w, atol=1e-6)
    lsm = ScanNetStyleDataset(str(root / "sceneA"), size=(48, 64), lsm_protocol=True)
    assert [it[1:] for it in lsm.items] == [((0, 2), (1,)), ((3, 5), (4,))]
    # A frame with an invalid pose removes every tuple that uses it.
    with open(root / "sceneA" / "pose" / "3.txt", "w") as fh:
        fh.write("\n".join(["-inf -inf -inf -inf"] * 4))
    ds2 = ScanNetStyleDataset(str(root), size=(48, 64), gap=2)
    assert len(ds2) == 4
    assert all(3 not in ds2.items[k][1] + ds2.items[k][2] for k in range(len(ds2)) if ds2.items[k][0] == 0)
    with pytest.raises(ValueError):
        ScanNetStyleDataset(str(root), gap=1, num_targets=1)
    with pytest.raises(ValueError):
        ScanNetStyleDataset(str(tmp_path / "nothing"))
    with pytest.raises(ValueError):
        ScanNetStyleScene(str(root / "sceneA"), label_map={1: 9})


def test_nyu40_map_covers_all_classes():
    from lsm_train.data.scannet import NYU40_TO_LSM
    assert sorted(set(NYU40_TO_LSM.values())) == list(range(8))
    assert 0 not in NYU40_TO_LSM and NYU40_TO_LSM[1] == 0 and NYU40_TO_LSM[5] == 3 and NYU40_TO_LSM[39] == 7
