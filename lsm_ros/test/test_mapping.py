"""The semantic voxel map (lsm.mapping): fusion, bounded memory, instances, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from lsm.mapping import VoxelMap, voxel_keys


def _box(center, size, n, rng, feature, dim=4):
    pts = center + (rng.random((n, 3)) - 0.5) * size
    feats = np.tile(feature, (n, 1)).astype(np.float32)
    return pts, np.full((n, 3), 128, np.uint8), feats, np.ones(n, np.float32)


def _relevance(features):  # relevance = first feature channel (a stand-in for text similarity)
    return np.clip(features[:, 0], 0, 1)


def test_fusion_averages_by_confidence_and_counts_observations():
    m = VoxelMap(voxel_size=1.0, max_voxels=10, feature_dim=2)
    pts = np.array([[0.2, 0.2, 0.2], [0.4, 0.4, 0.4]])
    m.integrate(pts, np.array([[0, 0, 0], [200, 200, 200]], np.uint8),
                np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([1.0, 3.0]), 5.0)
    m.integrate(pts[:1], np.array([[100, 100, 100]], np.uint8), np.array([[1.0, 0.0]], np.float32),
                np.array([4.0]), 6.0)
    data = m.snapshot()
    assert len(m) == 1 and data["count"][0] == 2 and data["weight"][0] == 8.0
    np.testing.assert_allclose(data["feature"][0], [(1 + 0 + 4) / 8, 3 / 8], rtol=1e-6)
    np.testing.assert_allclose(data["position"][0], (0.2 * 1 + 0.4 * 3 + 0.2 * 4) / 8, rtol=1e-6)
    assert data["last_seen"][0] == 6.0


def test_memory_is_bounded_and_the_stalest_voxels_go_first():
    m = VoxelMap(voxel_size=0.1, max_voxels=1000, feature_dim=2)
    rng = np.random.default_rng(0)
    for t in range(30):
        pts = rng.random((400, 3)) * 0.5 + [t * 1.0, 0, 0]  # a new place every update
        touched = m.integrate(pts, np.zeros((400, 3), np.uint8), np.zeros((400, 2), np.float32),
                              np.ones(400, np.float32), float(t))
        assert len(m) <= 1000
    assert m.evicted > 0
    seen = m.snapshot()["last_seen"]
    assert (seen == 29.0).sum() == touched  # the newest place is whole
    assert seen.min() >= 20.0  # ~125 voxels a place: only the newest places remain


def test_instances_split_objects_and_rank_them():
    rng = np.random.default_rng(1)
    m = VoxelMap(voxel_size=0.05, max_voxels=50000, feature_dim=2)
    for center, relevance in (((0, 0, 0), 0.9), ((2, 0, 0), 0.7), ((0, 3, 0), 0.1)):
        m.integrate(*_box(np.array(center, float), 0.4, 4000, rng, [relevance, 0.0]), 1.0)
    found, best = m.instances(_relevance, "mug", threshold=0.5)
    assert best == pytest.approx(0.9, abs=1e-6)
    assert [round(i.score, 2) for i in found] == [0.9, 0.7]
    np.testing.assert_allclose(found[0].centroid, [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(found[1].centroid, [2, 0, 0], atol=0.05)
    assert np.all(np.abs(found[0].extent - 0.4) < 0.06) and found[0].voxel_count > 100
    top = m.instances(_relevance, "mug", threshold=0.5, max_instances=1)[0]
    assert len(top) == 1 and np.allclose(top[0].centroid, found[0].centroid)
    none, best_none = m.instances(_relevance, "x", threshold=0.95)
    assert none == [] and best_none == pytest.approx(0.9, abs=1e-6)


def test_save_and_load_give_the_same_instances(tmp_path):
    rng = np.random.default_rng(2)
    m = VoxelMap(voxel_size=0.05, max_voxels=20000, feature_dim=2, frame="odom")
    m.integrate(*_box(np.array([1.0, 1.0, 0.5]), 0.3, 3000, rng, [0.8, 0.2]), 3.0)
    m.save(tmp_path / "map", ["mug", "wall"])
    loaded = VoxelMap.load(tmp_path / "map")
    assert loaded.frame == "odom" and loaded.voxel_size == 0.05 and len(loaded) == len(m)
    a, _ = m.instances(_relevance, "mug")
    b, _ = loaded.instances(_relevance, "mug")
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a[0].centroid, b[0].centroid, atol=1e-6)
    assert a[0].voxel_count == b[0].voxel_count


def test_voxel_keys_are_unique_per_cell():
    ijk = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, -1, -1], [5, -7, 9]])
    assert len(set(voxel_keys(ijk).tolist())) == len(ijk)


# --------------------------------------------------------------------- MapFusion with real
# reconstructions of the (untrained, seeded) tiny model: placement only, not semantics
@pytest.fixture(scope="module")
def perception():
    import torch

    from lsm.model.lsm import LSM
    from lsm.perception import Perception

    torch.manual_seed(0)
    return Perception(LSM.from_config("tiny").eval())


def _pair(perception, seed, metric=True, frame=""):
    from lsm.metric import PairSensors
    from lsm.specs import MetricSpec

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    spec = MetricSpec(scale_source="fixed", fixed_scale=0.5) if metric else MetricSpec(
        scale_source="none")
    rec = perception.reconstruct([tuple(images)], sensors=[PairSensors()], metric=spec)[0]
    return rec.transformed(np.eye(4), frame) if frame else rec


def test_mono_keyframes_chain_into_one_frame_without_tf(perception):
    from lsm.mapping import MapFusion

    fusion = MapFusion(VoxelMap(0.05, 100000, perception.model.config.semantic.feature_dim),
                       chain=True)
    assert fusion.add(_pair(perception, 0), perception.map_points, (1.0, 0.0))
    np.testing.assert_allclose(fusion.last_c2w[0], np.eye(4), atol=1e-9)  # the chain's start
    first_view0 = fusion.last_c2w[0]
    # the next keyframe pair (2, 1): its view 1 is the previous reference (stamp 1.0)
    assert fusion.add(_pair(perception, 1), perception.map_points, (2.0, 1.0))
    np.testing.assert_allclose(fusion.last_c2w[1], first_view0, atol=1e-5)
    assert fusion.map.frame == MapFusion.CHAIN_FRAME and "own chained poses" in fusion.note
    assert "lowest pose confidence among the chain's links" in fusion.note and fusion.restarts == 0
    # a pair that does not continue the chain (its partner's pair was dropped) cannot be
    # placed in this chain: the chain starts over at the identity in a cleared map
    before = len(fusion.map)
    assert fusion.add(_pair(perception, 2), perception.map_points, (9.0, 8.0))
    np.testing.assert_allclose(fusion.last_c2w[0], np.eye(4), atol=1e-9)
    assert fusion.restarts == 1 and "the chain broke at stamp 9.000" in fusion.note
    alone = MapFusion(VoxelMap(0.05, 100000, perception.model.config.semantic.feature_dim), chain=True)
    alone.add(_pair(perception, 2), perception.map_points, (9.0, 8.0))
    assert 0 < len(fusion.map) == len(alone.map) < before + len(alone.map)


def test_what_cannot_be_placed_is_not_fused_and_the_note_says_why(perception):
    from lsm.mapping import MapFusion

    dim = perception.model.config.semantic.feature_dim
    fusion = MapFusion(VoxelMap(0.05, 100000, dim, frame="odom"))
    assert not fusion.add(_pair(perception, 0, metric=False), perception.map_points, (1.0, 0.0))
    assert "model units" in fusion.note and len(fusion.map) == 0
    assert not fusion.add(_pair(perception, 0), perception.map_points, (1.0, 0.0))
    assert "no world_frame" in fusion.note
    assert fusion.add(_pair(perception, 0, frame="odom"), perception.map_points, (1.0, 0.0))
    assert len(fusion.map) > 0 and "(TF)" in fusion.note
    assert not fusion.add(_pair(perception, 1, frame="map"), perception.map_points, (2.0, 1.0))
    assert "'map'" in fusion.note and "'odom'" in fusion.note


def test_instance_centroid_is_the_centre_of_its_box_not_of_its_crowded_side():
    rng = np.random.default_rng(3)
    m = VoxelMap(voxel_size=0.05, max_voxels=50000, feature_dim=2)
    # a table seen mostly from one side: a dense front face, a sparse back face
    front = np.c_[rng.random(5000) * 1.0, np.zeros(5000), rng.random(5000) * 0.4]
    back = np.c_[rng.random(300) * 1.0, np.full(300, 0.6), rng.random(300) * 0.4]
    pts = np.r_[front, back]
    top = np.c_[rng.random(3000), rng.random(3000) * 0.6, np.full(3000, 0.4)]
    pts = np.r_[pts, top]
    n = len(pts)
    m.integrate(pts, np.zeros((n, 3), np.uint8), np.tile([0.9, 0.0], (n, 1)).astype(np.float32),
                np.ones(n, np.float32), 1.0)
    found, _ = m.instances(_relevance, "table")
    assert len(found) == 1
    np.testing.assert_allclose(found[0].centroid, [0.5, 0.3, 0.2], atol=0.05)


def test_an_update_larger_than_the_map_keeps_its_most_confident_voxels():
    m = VoxelMap(voxel_size=1.0, max_voxels=1000, feature_dim=1)
    pts = np.c_[np.arange(3000) + 0.5, np.zeros(3000), np.zeros(3000)]
    conf = np.r_[np.ones(2000), np.full(1000, 5.0)].astype(np.float32)
    m.integrate(pts, np.zeros((3000, 3), np.uint8), np.zeros((3000, 1), np.float32), conf, 1.0)
    data = m.snapshot()
    assert len(m) == 1000 and np.all(data["weight"] == 5.0)
    # and the map keeps working: revisiting a kept voxel finds it, a new one evicts
    m.integrate(pts[2500:2501], np.zeros((1, 3), np.uint8), np.zeros((1, 1), np.float32),
                np.ones(1, np.float32), 2.0)
    assert len(m) == 1000 and m.snapshot()["count"].max() == 2
    m.integrate(pts[:1] - 10, np.zeros((1, 3), np.uint8), np.zeros((1, 1), np.float32),
                np.ones(1, np.float32), 3.0)
    assert len(m) == 901 and m.evicted == 100


def test_free_space_clearing_removes_what_the_camera_now_sees_through():
    """A box that was at x = 2 m is gone: a camera at the origin now sees a wall at x = 4 m
    through where it stood. Each view halves the weight of what it sees through (the box's
    voxels hold ~30 points, weight ~30): after about five views they are removed; the wall,
    the voxels beside the rays and a box behind the wall stay."""
    rng = np.random.default_rng(0)
    m = VoxelMap(voxel_size=0.1, max_voxels=100_000, feature_dim=4)
    gone = _box(np.array([2.0, 0.0, 0.0]), 0.4, 2000, rng, [1, 0, 0, 0])
    beside = _box(np.array([2.0, 2.0, 0.0]), 0.4, 2000, rng, [0, 1, 0, 0])
    behind = _box(np.array([5.0, 0.0, 0.0]), 0.4, 2000, rng, [0, 0, 1, 0])
    for data in (gone, beside, behind):
        m.integrate(*data, stamp=1.0)
    yz = (rng.random((4000, 2)) - 0.5) * 1.0  # the wall the camera sees now, behind the box
    wall = np.c_[np.full(len(yz), 4.0), yz]
    before = len(m)
    removed = []
    for view in range(8):
        stamp = 2.0 + view
        m.integrate(wall, np.full((len(wall), 3), 90, np.uint8), np.zeros((len(wall), 4), np.float32),
                    np.ones(len(wall), np.float32), stamp)
        removed.append(m.clear_free_space(np.zeros(3), wall, stamp))
    assert removed[0] == 0  # one view weakens the box (weights halve), it does not erase it
    assert sum(removed) > 0 and m.cleared == sum(removed)
    feats = m.snapshot()["feature"]
    positions = m.snapshot()["position"]
    left_of_gone = (np.abs(positions - [2.0, 0.0, 0.0]) < 0.15).all(1).sum()
    assert left_of_gone == 0  # the box the rays pass through is gone
    assert (feats[:, 1] > 0.5).sum() > 20 and (feats[:, 2] > 0.5).sum() > 20  # beside, behind
    assert (np.abs(positions[:, 0] - 4.0) < 0.1).sum() > 50  # the wall itself stays
    assert len(m) < before + 200  # voxels were removed, not only added
    # an empty map or no points: nothing to do
    assert VoxelMap().clear_free_space(np.zeros(3), wall, 1.0) == 0
    assert m.clear_free_space(np.zeros(3), np.zeros((0, 3)), 9.0) == 0


def test_the_floor_decided_by_geometry_is_kept_per_voxel_and_answers_floor_queries(tmp_path):
    """Floor votes (lsm.geometry.floor) are fused per voxel: the share of the observations
    that decided it and said floor. A floor query follows them where they exist, the
    features elsewhere; they survive save/load."""
    rng = np.random.default_rng(3)
    m = VoxelMap(voxel_size=0.05, max_voxels=50000, feature_dim=2, frame="odom")
    # a floor patch whose features do NOT look like the floor (relevance 0.1), decided floor
    floor_patch = _box(np.array([0.0, 0.0, 0.0]), 0.5, 4000, rng, [0.1, 0.0])
    m.integrate(*floor_patch, 1.0, floor=np.ones(4000, bool))
    # a table top the features call floor (0.9), decided NOT floor twice, floor once
    table = _box(np.array([2.0, 0.0, 0.7]), 0.4, 3000, rng, [0.9, 0.0])
    for stamp, said in ((2.0, False), (3.0, False), (4.0, True)):
        m.integrate(*table, stamp, floor=np.full(3000, said))
    # a rug never decided: the features speak (0.8)
    m.integrate(*_box(np.array([0.0, 3.0, 0.0]), 0.4, 3000, rng, [0.8, 0.0]), 5.0)
    share = m.snapshot()["floor"]
    assert np.nanmax(share) == 1.0 and np.isnan(share).any()
    assert np.all((share[np.isfinite(share)] == 1.0) | (np.abs(share[np.isfinite(share)] - 1 / 3) < 1e-5))
    found, _ = m.instances(_relevance, "floor", threshold=0.5, floor=True)
    centres = sorted(tuple(np.round(i.centroid, 1)) for i in found)
    assert centres == [(0.0, 0.0, 0.0), (0.0, 3.0, 0.0)], centres  # the table is out, the rug in
    plain, _ = m.instances(_relevance, "floor", threshold=0.5)
    assert sorted(tuple(np.round(i.centroid, 1)) for i in plain) == [(0.0, 3.0, 0.0), (2.0, 0.0, 0.7)]
    m.save(tmp_path / "map", ["floor", "table"])
    loaded = VoxelMap.load(tmp_path / "map")
    kept = loaded.snapshot()["floor"]  # (voxel order may differ after loading)
    assert np.isnan(kept).sum() == np.isnan(share).sum()
    np.testing.assert_allclose(np.sort(kept[np.isfinite(kept)]), np.sort(share[np.isfinite(share)]))
    again, _ = loaded.instances(_relevance, "floor", threshold=0.5, floor=True)
    assert len(again) == len(found)


def test_map_labels_follow_the_floor_votes(perception):
    """Perception.feature_labels with a snapshot's floor share: >= 0.5 is floor, below is
    any other label, NaN leaves the features to decide."""
    features = np.random.default_rng(4).normal(size=(6, perception.model.config.semantic.feature_dim))
    labels = ["wall", "floor", "chair"]
    model = perception.feature_labels(features, labels)
    share = np.array([1.0, 0.0, np.nan, 0.6, 0.4, np.nan], np.float32)
    decided = perception.feature_labels(features, labels, share)
    assert decided[0] == 1 and decided[3] == 1 and decided[1] != 1 and decided[4] != 1
    assert decided[2] == model[2] and decided[5] == model[5]
    assert np.array_equal(perception.feature_labels(features, ["wall", "chair"], share),
                          perception.feature_labels(features, ["wall", "chair"]))
