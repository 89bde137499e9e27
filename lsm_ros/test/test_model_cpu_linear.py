"""lsm.model.cpu_linear: linear layers through oneDNN on an x86 CPU compute what F.linear does,
and only where they should (inference, fp32, no autocast, a large product, a layer whose
input shape repeats)."""
import platform

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsm.model import cpu_linear
from lsm.model.cpu_linear import OneDNNLinear, applies, onednn_linear, use_onednn_linear

X86 = platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
needs_onednn = pytest.mark.skipif(not X86, reason="oneDNN's linear is used on x86-64 CPUs only")
ROWS = 4096  # ROWS x 256 x 192 multiply-adds: above MIN_MACS


def _weights():
    gen = torch.Generator().manual_seed(3)
    return gen, torch.randn(192, 256, generator=gen), torch.randn(192, generator=gen)


@needs_onednn
def test_available_on_x86_and_applies_at_inference_only():
    assert cpu_linear.available()  # a torch upgrade that drops or breaks the op fails here
    _, w, _ = _weights()
    assert ROWS * 256 * 192 >= cpu_linear.MIN_MACS
    x = torch.randn(ROWS, 256)
    with torch.no_grad():
        assert applies(x, w)
        assert not applies(x[:64], w)  # a small product: not worth a kernel build
        assert not applies(x.double(), w.double())
        with cpu_linear.aten():
            assert not applies(x, w)
        assert applies(x, w)  # the block ended
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not applies(x, w)
        assert not applies(torch.randn(0, 256), w)
    assert not applies(x, w.requires_grad_())  # training builds a graph: aten's route


@needs_onednn
@pytest.mark.parametrize("shape", [(ROWS, 256), (2, ROWS // 2, 256), (2, 4, ROWS // 8, 256), (256,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_matches_f_linear(shape, with_bias):
    gen, w, b = _weights()
    x = torch.randn(*shape, generator=gen)
    bias = b if with_bias else None
    with torch.no_grad():
        got = onednn_linear(x, w, bias)
    ref = F.linear(x.double(), w.double(), None if bias is None else bias.double())
    assert got.shape == ref.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_onednn_takes_strided_inputs_and_weights():
    gen, _, _ = _weights()
    x = torch.randn(256, ROWS, generator=gen).t()  # not contiguous
    w_chunk = torch.randn(3 * 192, 256, generator=gen).chunk(3, dim=0)[1]  # a view
    with torch.no_grad():
        torch.testing.assert_close(onednn_linear(x, w_chunk), x @ w_chunk.t(), rtol=1e-5, atol=1e-3)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)
        self.mha = nn.MultiheadAttention(256, 4, batch_first=True)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(256, 192))

    def forward(self, x):
        h = self.fc(x)
        return self.out(self.mha(h, h, h, need_weights=False)[0])


def test_switch_keeps_parameters_and_outputs_and_only_repeated_shapes_take_onednn():
    torch.manual_seed(0)
    net = _Net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, ROWS // 2, 256)
    with torch.no_grad():
        ref = net(x)
    switched = use_onednn_linear(net)
    assert switched == (2 if cpu_linear.available() else 0)
    assert type(net.mha.out_proj) is not OneDNNLinear  # its owner reads the weight itself
    after = net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)
    if not switched:
        return
    assert type(net.fc) is OneDNNLinear and net.fc.route == "aten: no call so far"
    with torch.no_grad():
        first = net(x)  # recorded the shape, on aten
        assert torch.equal(first, ref)
        second = net(x)  # the same shape again: oneDNN
        assert net.fc.route == "oneDNN"
        torch.testing.assert_close(second, ref, rtol=1e-4, atol=1e-4)
        assert not torch.equal(second, ref)  # another summation order: it did take oneDNN
        with cpu_linear.aten():  # the benchmark's comparison leaves the record alone
            net(x[:1])
        assert net.fc.route == "oneDNN"
        torch.testing.assert_close(net(x[:1]), ref[:1], rtol=1e-4, atol=1e-4)
        assert net.fc.route == "aten: shape varies"  # a new shape: aten for good
        h = net.fc(x)  # even the first shape now
        assert torch.equal(h, F.linear(x, net.fc.weight, net.fc.bias))
    use_onednn_linear(net)  # switching again resets the record
    assert net.fc.route == "aten: no call so far"


def test_autocast_and_gradients_are_f_linears():
    torch.manual_seed(1)
    net = _Net().eval()
    plain = _Net().eval()
    plain.load_state_dict(net.state_dict())
    use_onednn_linear(net)
    x = torch.randn(2, ROWS // 2, 256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            assert torch.equal(net(x), plain(x))
    xg = x.clone().requires_grad_()
    net(xg).square().mean().backward()
    g = xg.grad.clone()
    xg.grad = None
    plain(xg).square().mean().backward()
    assert torch.equal(g, xg.grad)
    assert torch.equal(net.fc.weight.grad, plain.fc.weight.grad)


def test_embedded_model_on_onednn_matches_aten():
    """The whole embedded model, its layers switched and run twice (the second run on
    oneDNN where the shape repeats): pointmaps and Gaussians within fp32 rounding."""
    from lsm.checkpoint import load_model

    model = load_model(None).eval()
    use_onednn_linear(model)
    gen = torch.Generator().manual_seed(1)
    size = model.config.image_size
    img1, img2 = (torch.rand(1, 3, size, size, generator=gen) for _ in range(2))
    with torch.no_grad():
        with cpu_linear.aten():
            ref = model(img1, img2)
        model(img1, img2)
        fast = model(img1, img2)
    rel = (fast.pts1 - ref.pts1).norm(dim=-1) / ref.pts1.norm(dim=-1).clamp_min(1e-6)
    assert float(rel.max()) < 1e-4
    torch.testing.assert_close(fast.gaussians.features, ref.gaussians.features, rtol=1e-3, atol=1e-4)
