"""Reduced precision on CPU: bf16 runs where the processor has it, and its accuracy cost
against fp32 stays small on fixed procedural pairs (the figures lsm-benchmark prints)."""
from __future__ import annotations

import pytest
import torch

from lsm.perception import Perception, effective_precision


def test_effective_precision_says_what_runs_and_why():
    assert effective_precision("fp32", "cpu") == ("fp32", "")
    assert effective_precision("fp16", "cuda:0") == ("fp16", "")
    assert effective_precision("bf16", "cuda") == ("bf16", "")
    name, note = effective_precision("fp16", "cpu")
    assert name == "fp32" and "CUDA only" in note
    name, note = effective_precision("bf16", "cpu")
    assert name in ("bf16", "fp32") and (name == "bf16") == (note == "")
    with pytest.raises(ValueError, match="precision must be one of"):
        effective_precision("int8", "cpu")


@pytest.mark.skipif(effective_precision("bf16", "cpu")[0] != "bf16",
                    reason="this CPU has no native bf16")
def test_cpu_bf16_keeps_pointmaps_cameras_and_labels_of_fp32():
    from lsm.specs import DEFAULT_LABELS
    from lsm_tools.benchmark import benchmark_pairs, measure_precisions

    model = Perception.load(device="cpu").model
    rows = measure_precisions(model, benchmark_pairs(2, (240, 320), seed=3),
                              torch.device("cpu"), repeats=1, labels=DEFAULT_LABELS)
    bf16 = next(r for r in rows if r.get("precision") == "bf16")
    assert 0 < bf16["pointmap_rel_diff"] < 0.01  # it did run in bf16; measured 0.05 %
    assert bf16["depth_absrel_vs_fp32"] < 0.01
    assert bf16["rotation_diff_deg"] < 0.5  # measured 0.03-0.07 deg
    assert bf16["labels_changed"] < 0.05  # measured 1 %
    assert next(r for r in rows if r.get("precision") == "fp32")["speedup"] == 1.0
    from lsm.model import cpu_linear
    from lsm_tools.benchmark import ATEN_LINEAR

    aten = [r for r in rows if r.get("precision") == ATEN_LINEAR]
    assert len(aten) == int(cpu_linear.available())
    for row in aten:  # the linear layers on aten's BLAS: fp32 as well, the same outputs
        assert row["pointmap_rel_diff"] < 1e-4 and row["depth_absrel_vs_fp32"] < 1e-4
        assert row["labels_changed"] < 0.005


@pytest.mark.skipif(effective_precision("bf16", "cpu")[0] != "bf16",
                    reason="this CPU has no native bf16")
def test_loaded_bf16_stores_transformer_weights_in_bf16_with_the_same_results():
    """Perception.load(precision='bf16') keeps the weights autocast casts anyway in bf16
    (half their memory): its reconstruction equals autocast over fp32 weights exactly."""
    from lsm_tools.benchmark import benchmark_pairs

    stored = Perception.load(device="cpu", precision="bf16")
    assert stored.bf16_stored > 0
    dtypes = {p.dtype for n, p in stored.model.named_parameters() if ".enc_blocks." in n}
    assert torch.bfloat16 in dtypes
    assert all(p.dtype == torch.float32 for n, p in stored.model.named_parameters()
               if "downstream_head" in n)  # the pointmap heads run outside autocast
    plain = Perception(Perception.load(device="cpu").model, "bf16")  # fp32 weights
    pair = benchmark_pairs(1, (240, 320), seed=5)
    a = stored.reconstruct(pair, pose_check=False)[0]
    b = plain.reconstruct(pair, pose_check=False)[0]
    assert torch.equal(a.pointmaps, b.pointmaps) and torch.equal(a.confidence, b.confidence)
    assert torch.equal(a.gaussians.features, b.gaussians.features)


@pytest.mark.skipif(effective_precision("bf16", "cpu")[0] != "bf16",
                    reason="this CPU has no native bf16")
def test_paper_precision_table_times_stages_memory_and_agreement():
    """lsm-benchmark --paper's measurement, run on the tiny configuration (the paper one
    needs ~7 GB and a minute): every stage timed per precision, bf16 close to fp32."""
    from lsm.config import tiny
    from lsm.model import cpu_linear
    from lsm_tools.benchmark import ATEN_LINEAR, STORED_BF16, _paper_lines, measure_paper_precisions

    result = measure_paper_precisions(torch.device("cpu"), repeats=1, config=tiny())
    rows = {r["precision"]: r for r in result["rows"]}
    aten = {ATEN_LINEAR} if cpu_linear.available() else set()
    assert set(rows) == {"fp32", "bf16", STORED_BF16} | aten
    if aten:  # fp32 on aten's BLAS beside oneDNN's: the same maths to float rounding
        assert rows[ATEN_LINEAR]["pointmap_rel_diff"] < 1e-4
        assert rows[ATEN_LINEAR]["semantic_cosine_min"] > 0.9999
    for r in rows.values():
        assert r["stages_s"]["total"] >= r["stages_s"]["point_aggregation"] > 0
        assert r["peak_memory_bytes"] > 0
    assert 0 < rows["bf16"]["pointmap_rel_diff"] < 0.01
    assert rows["bf16"]["semantic_cosine_min"] > 0.99
    # the node's bf16 (transformer weights stored in bf16) computes exactly what autocast does
    assert rows[STORED_BF16]["max_abs_diff_vs_bf16"] == 0.0
    text = "\n".join(_paper_lines(result))
    assert "| bf16 |" in text and "random (tiny configuration)" in text
    assert f"| {STORED_BF16} |" in text


@pytest.mark.parametrize("backend", ["torch", "spconv"])
def test_sparse_convolutions_stay_fp32_under_cpu_autocast(backend):
    """Both sparse-conv backends run in fp32 inside CPU bf16 autocast (spconv's CPU kernels
    have no bf16) and give the fp32 result of their rounded input."""
    from lsm.model.ptv3.sparse_conv import SparseGrid, SubMConv3d, spconv_available

    if backend == "spconv" and not spconv_available():
        pytest.skip("spconv is not installed (no wheel for this Python)")
    gen = torch.Generator().manual_seed(0)
    grid = torch.randint(0, 6, (200, 3), generator=gen)
    batch = torch.zeros(200, dtype=torch.long)
    conv = SubMConv3d(8, 16, backend=backend)
    x = torch.randn(200, 8, generator=gen).bfloat16()
    want = conv(x.float(), SparseGrid(grid, batch, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv(x, SparseGrid(grid, batch, 1))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_flop_count_is_the_same_on_onednn_linear_layers(monkeypatch):
    """The benchmark's FLOP count (torch's counter) does not see oneDNN's op: it counts on
    aten's route, so a model switched to oneDNN reports the same products."""
    from lsm.checkpoint import load_model
    from lsm.model import cpu_linear
    from lsm.model.cpu_linear import use_onednn_linear
    from lsm_tools.benchmark import count_flops

    monkeypatch.setattr(cpu_linear, "MIN_MACS", 0)  # every product on oneDNN where it runs
    model = load_model(None).eval()
    gen = torch.Generator().manual_seed(0)
    img1, img2 = (torch.rand(1, 3, 64, 64, generator=gen) for _ in range(2))
    before = count_flops(model, img1, img2)
    use_onednn_linear(model)
    assert count_flops(model, img1, img2) == before > 0
