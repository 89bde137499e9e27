"""CrossModelBlock: same maths as the official DecoderBlock (nn.MultiheadAttention, padding)."""
import pytest
import torch

from lsm.model.fusion import CrossModelBlock


def _official_reference(block, x, tokens, valid):
    """The official DecoderBlock forward, written with the block's own torch modules."""
    h = block.norm1(x)
    x = x + block.attn(h, h, h, key_padding_mask=~valid, need_weights=False)[0]
    y = block.norm_y(tokens)
    q = block.norm2(x)
    x = x + block.cross_attn(q, y, y, need_weights=False)[0]
    return x + block.mlp(block.norm3(x))


def test_state_dict_layout_has_no_attention_biases():
    block = CrossModelBlock(64, 4)
    names = set(block.state_dict())
    assert "attn.in_proj_weight" in names and "attn.in_proj_bias" not in names
    assert "attn.out_proj.bias" not in names
    assert {"norm_y.weight", "mlp.fc1.weight", "mlp.fc2.bias", "norm3.bias"} <= names
    assert block.attn.in_proj_weight.shape == (192, 64)


def test_matches_multihead_attention_with_padding():
    torch.manual_seed(0)
    block = CrossModelBlock(32, 4, mlp_ratio=2.0).double().eval()
    counts = [7, 12]
    feat = torch.randn(sum(counts), 32, dtype=torch.float64)
    tokens = torch.randn(2, 5, 32, dtype=torch.float64)
    padded = torch.zeros(2, 12, 32, dtype=torch.float64)
    valid = torch.zeros(2, 12, dtype=torch.bool)
    for b, part in enumerate(feat.split(counts)):
        padded[b, :len(part)] = part
        valid[b, :len(part)] = True
    ref = _official_reference(block, padded, tokens, valid)[valid]
    out_points = block.forward_points(feat, counts, tokens)
    out_padded = block(padded, tokens, key_padding_mask=~valid)[valid]
    assert torch.allclose(out_points, ref, atol=1e-10)
    assert torch.allclose(out_padded, ref, atol=1e-10)


def test_points_attend_to_tokens_and_to_each_other():
    torch.manual_seed(1)
    block = CrossModelBlock(16, 2).eval()
    feat = torch.randn(10, 16)
    tokens = torch.randn(1, 3, 16)
    base = block.forward_points(feat, [10], tokens)
    other_tokens = block.forward_points(feat, [10], torch.randn(1, 3, 16))
    assert (base - other_tokens).abs().max() > 1e-3
    moved = feat.clone()
    moved[9] = torch.randn(16) * 3.0
    changed = block.forward_points(moved, [10], tokens)
    assert (base[:9] - changed[:9]).abs().max() > 1e-4  # self-attention mixes points


def test_samples_are_independent():
    torch.manual_seed(2)
    block = CrossModelBlock(16, 2).eval()
    feat = torch.randn(9, 16)
    tokens = torch.randn(2, 4, 16)
    both = block.forward_points(feat, [4, 5], tokens)
    first = block.forward_points(feat[:4], [4], tokens[:1])
    assert torch.allclose(both[:4], first, atol=1e-6)


def test_bad_input_is_rejected():
    block = CrossModelBlock(16, 2)
    with pytest.raises(ValueError):
        CrossModelBlock(10, 3)
    with pytest.raises(ValueError):
        block.forward_points(torch.zeros(5, 16), [2, 2], torch.zeros(2, 3, 16))
    with pytest.raises(ValueError):
        block.forward_points(torch.zeros(4, 16), [2, 2], torch.zeros(1, 3, 16))
    with pytest.raises(ValueError):
        block(torch.zeros(1, 4, 16), torch.zeros(1, 3, 8))
    with pytest.raises(ValueError):
        block(torch.zeros(1, 4, 16), torch.zeros(1, 3, 16), key_padding_mask=torch.zeros(1, 3, dtype=torch.bool))
