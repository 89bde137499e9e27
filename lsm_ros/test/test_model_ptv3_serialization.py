"""Space-filling curves used by PTv3: bijective, local, hierarchical, identical to upstream."""
import pytest
import torch

from lsm.model.ptv3 import serialization as S


def _all_cells(depth):
    r = torch.arange(1 << depth)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)


@pytest.mark.parametrize("order", S.ORDERS)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_codes_are_a_bijection_of_the_grid(order, depth):
    grid = _all_cells(depth)
    code = S.encode(grid, torch.zeros(len(grid), dtype=torch.long), depth, order)
    assert torch.equal(torch.sort(code).values, torch.arange(8 ** depth))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_consecutive_hilbert_codes_are_grid_neighbours(depth):
    grid = _all_cells(depth)
    code = S.hilbert_encode(grid, depth)
    walk = grid[torch.argsort(code)]
    steps = (walk[1:] - walk[:-1]).abs().sum(1)
    assert torch.all(steps == 1)


def test_z_order_jumps_but_stays_within_octants():
    depth = 3
    grid = _all_cells(depth)
    walk = grid[torch.argsort(S.z_order_encode(grid, depth))]
    steps = (walk[1:] - walk[:-1]).abs().sum(1)
    assert steps.max() > 1  # Morton order is not continuous ...
    # ... but every aligned run of 8 codes is one 2x2x2 cell
    cells = (walk >> 1).reshape(-1, 8, 3)
    assert torch.all(cells == cells[:, :1])


@pytest.mark.parametrize("order", S.ORDERS)
def test_parent_code_is_code_shifted_by_three_bits(order):
    depth = 5
    g = torch.Generator().manual_seed(0)
    grid = torch.randint(0, 1 << depth, (500, 3), generator=g)
    batch = torch.randint(0, 3, (500,), generator=g)
    fine = S.encode(grid, batch, depth, order)
    # cells are preserved: two voxels share a parent code iff they share a parent voxel
    parent_key = (batch * 64 + (grid[:, 0] >> 1)) * 4096 + (grid[:, 1] >> 1) * 64 + (grid[:, 2] >> 1)
    _, by_code = torch.unique(fine >> 3, return_inverse=True)
    _, by_voxel = torch.unique(parent_key, return_inverse=True)
    same_code = by_code[:, None] == by_code[None, :]
    same_voxel = by_voxel[:, None] == by_voxel[None, :]
    assert torch.equal(same_code, same_voxel)


def test_decoders_invert_encoders():
    g = torch.Generator().manual_seed(1)
    for depth in (1, 4, 9, 16):
        grid = torch.randint(0, 1 << depth, (2000, 3), generator=g)
        assert torch.equal(S.z_order_decode(S.z_order_encode(grid, depth), depth), grid)
        assert torch.equal(S.hilbert_decode(S.hilbert_encode(grid, depth), depth), grid)


def test_codes_equal_pointcept_ptv3_values():
    # reference values produced by Pointcept PointTransformerV3 (342656c) serialization.encode
    grid = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 5, 7], [15, 2, 9],
                         [200, 17, 131], [511, 0, 256]])
    zero = torch.zeros(len(grid), dtype=torch.long)
    expected = {
        "z": [0, 4, 2, 1, 239, 2869, 11544587, 93473060],
        "z-trans": [0, 2, 4, 1, 351, 1715, 6833165, 55125138],
        "hilbert": [0, 1, 7, 3, 177, 1110, 9402284, 117440511],
        "hilbert-trans": [0, 7, 1, 3, 401, 2134, 14038664, 41343853],
    }
    for order, values in expected.items():
        assert S.encode(grid, zero, 9, order).tolist() == values, order
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    assert S.encode(grid[:6], batch, 4, "hilbert").tolist() == [0, 7, 3, 4097, 4487, 7648]


def test_serialize_groups_samples_and_inverts_orders():
    g = torch.Generator().manual_seed(2)
    grid = torch.randint(0, 16, (300, 3), generator=g)
    batch = torch.sort(torch.randint(0, 3, (300,), generator=g)).values
    code, order, inverse = S.serialize(grid, batch, 4, S.ORDERS)
    assert code.shape == order.shape == inverse.shape == (4, 300)
    for k in range(4):
        assert torch.all(torch.diff(batch[order[k]]) >= 0)  # samples stay contiguous
        assert torch.equal(order[k][inverse[k]], torch.arange(300))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        S.z_order_encode(torch.zeros(4, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError):
        S.hilbert_encode(torch.tensor([[-1, 0, 0]]), 3)
    with pytest.raises(ValueError):
        S.hilbert_encode(torch.tensor([[8, 0, 0]]), 3)  # outside 2**depth
    with pytest.raises(ValueError):
        S.z_order_encode(torch.zeros(1, 3, dtype=torch.long), 17)
    with pytest.raises(ValueError):
        S.encode(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1), 2, "peano")
