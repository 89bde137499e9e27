"""lsm.model.cpu_linear: linear layers through oneDNN on an x86 CPU compute what F.linear does,
and only where they can (inference, fp32, no autocast)."""
import platform

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsm.model import cpu_linear
from lsm.model.cpu_linear import OneDNNLinear, applies, linear, use_onednn_linear

X86 = platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()


ROWS = 4096  # ROWS x 256 x 192 multiply-adds: above MIN_MACS, so oneDNN's route is taken


def _inputs():
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(192, 256, generator=gen)
    b = torch.randn(192, generator=gen)
    return gen, w, b


@pytest.mark.skipif(not X86, reason="oneDNN's linear is used on x86-64 CPUs only")
def test_available_on_x86_and_taken_at_inference_only():
    assert cpu_linear.available()  # a torch upgrade that drops or breaks the op fails here
    _, w, b = _inputs()
    assert ROWS * 256 * 192 >= cpu_linear.MIN_MACS
    x = torch.randn(ROWS, 256)
    with torch.no_grad():
        assert applies(x, w)
        assert not applies(x[:64], w)  # a small product: not worth a new oneDNN kernel
        assert not applies(x.double(), w.double())
        with cpu_linear.aten():
            assert not applies(x, w)
        assert applies(x, w)  # the block ended
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not applies(x, w)
        assert not applies(torch.randn(0, 256), w)
    assert not applies(x, w.requires_grad_())  # training builds a graph: aten's route


@pytest.mark.parametrize("shape", [(ROWS, 256), (2, ROWS // 2, 256), (2, 4, ROWS // 8, 256), (7, 256), (256,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_f_linear(shape, with_bias):
    gen, w, b = _inputs()
    x = torch.randn(*shape, generator=gen)
    bias = b if with_bias else None
    with torch.no_grad():
        got = linear(x, w, bias)
    ref = F.linear(x.double(), w.double(), None if bias is None else bias.double())
    assert got.shape == ref.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-4)


def test_strided_inputs_and_weights():
    gen, w, _ = _inputs()
    x = torch.randn(256, ROWS, generator=gen).t()  # not contiguous
    w_chunk = torch.randn(3 * 192, 256, generator=gen).chunk(3, dim=0)[1]  # a view, as in fusion
    with torch.no_grad():
        assert applies(x, w_chunk)
        torch.testing.assert_close(linear(x, w_chunk), x @ w_chunk.t(), rtol=1e-5, atol=1e-3)
        assert linear(torch.randn(0, 256), w).shape == (0, 192)


def test_gradients_are_f_linears():
    gen, w, b = _inputs()
    x = torch.randn(ROWS, 256, generator=gen, requires_grad=True)
    w = w.clone().requires_grad_()
    linear(x, w, b).square().sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad, w.grad = None, None
    F.linear(x, w, b).square().sum().backward()
    assert torch.equal(gx, x.grad) and torch.equal(gw, w.grad)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(256, 256)
        self.mha = nn.MultiheadAttention(256, 4, batch_first=True)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(256, 192))

    def forward(self, x):
        h = self.fc(x)
        return self.out(self.mha(h, h, h, need_weights=False)[0])


def test_use_onednn_linear_keeps_parameters_and_outputs():
    torch.manual_seed(0)
    net = _Net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, ROWS // 2, 256)
    with torch.no_grad():
        ref = net(x)
    switched = use_onednn_linear(net)
    assert switched == (2 if cpu_linear.available() else 0)
    if switched:
        assert type(net.fc) is OneDNNLinear and type(net.out[1]) is OneDNNLinear
    assert type(net.mha.out_proj) is not OneDNNLinear  # its owner reads the weight itself
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert applies(x, net.fc.weight)
        torch.testing.assert_close(net(x), ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: aten's own bf16 route
            got = net(x)
        for module in net.modules():
            if type(module) is OneDNNLinear:
                module.__class__ = nn.Linear
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(got, net(x))


def test_embedded_model_on_onednn_matches_aten():
    """The whole embedded model: pointmaps and Gaussians within fp32 rounding of aten's."""
    from lsm.checkpoint import load_model

    model = load_model(None).eval()
    use_onednn_linear(model)
    gen = torch.Generator().manual_seed(1)
    size = model.config.image_size
    img1, img2 = (torch.rand(1, 3, size, size, generator=gen) for _ in range(2))
    with torch.no_grad():
        fast = model(img1, img2)
        with cpu_linear.aten():
            ref = model(img1, img2)
    rel = (fast.pts1 - ref.pts1).norm(dim=-1) / ref.pts1.norm(dim=-1).clamp_min(1e-6)
    assert float(rel.max()) < 1e-4
    torch.testing.assert_close(fast.gaussians.features, ref.gaussians.features, rtol=1e-3, atol=1e-4)
