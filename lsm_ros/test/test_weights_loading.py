"""Weight files: official layouts, the official merge rule, lsm-convert, and refusal of bad files.

Uses the tiny configuration so every file is a few MB; the paper-size listing test is in
test_weights_paper.py.
"""
import argparse
import os
import pickle
import re
import struct
import sys
import types
import zipfile

import pytest
import torch

from lsm import weights_file
from lsm.checkpoint import EMBEDDED_CHECKPOINT, CheckpointError, load_model, read_checkpoint_file, save_checkpoint
from lsm.config import tiny
from lsm.convert import main as convert_main
from lsm.convert import model_reference
from lsm.model.lsm import LSM
from lsm.official_weights import DUST3R_PREFIX, assemble_official, detect_layout, read_weights

NS = argparse.Namespace(model="LSM_Dust3R(config={...})", epoch=99)


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    model = LSM(tiny())
    with torch.no_grad():  # non-default values everywhere, so a wrong source is detectable
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture()
def official_files(tmp_path, tiny_state):
    """An official-layout LSM checkpoint and a DUSt3R file whose values differ from it."""
    lsm = tmp_path / "checkpoint-final.pth"
    torch.save({"model": tiny_state, "args": NS, "epoch": 99}, lsm)
    dust3r_sd = {k[len(DUST3R_PREFIX):]: v + 1.0 if v.is_floating_point() else v
                 for k, v in tiny_state.items() if k.startswith(DUST3R_PREFIX)}
    dust3r = tmp_path / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth"
    torch.save({"model": dust3r_sd, "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(...)")},
               dust3r)
    return lsm, dust3r


def test_layouts_are_detected_and_renamed(official_files, tiny_state):
    lsm, dust3r = official_files
    a, b = read_weights(lsm), read_weights(dust3r)
    assert (a.layout, b.layout) == ("lsm", "dust3r")
    assert a.meta["args.model"].startswith("LSM_Dust3R") and a.meta["epoch"] == 99
    assert set(b.state) == {k for k in tiny_state if k.startswith(DUST3R_PREFIX)}
    # LSeg (Lightning 'state_dict', 'net.' prefix) and OpenAI CLIP state dicts
    layout, _ = detect_layout({"state_dict": {"net.scratch.head1.weight": torch.zeros(1),
                                              "net.pretrained.model.cls_token": torch.zeros(1)}})
    assert layout == "lseg"
    layout, _ = detect_layout({"token_embedding.weight": torch.zeros(1),
                               "transformer.resblocks.0.ln_1.weight": torch.zeros(1)})
    assert layout == "clip"
    with pytest.raises(CheckpointError, match="unrecognised weights layout"):
        detect_layout({"conv1.weight": torch.zeros(1)})


def test_official_rule_replaces_dust3r_by_its_own_file(official_files, tiny_state):
    lsm, dust3r = official_files
    model = load_model(lsm, dust3r=dust3r, keep_lsm_lseg=True, config=tiny())
    sd = model.state_dict()
    for k, v in tiny_state.items():
        expected = v + 1.0 if k.startswith(DUST3R_PREFIX) and v.is_floating_point() else v
        assert torch.equal(sd[k], expected), k
    assert "DUSt3R" in model.meta["sources"]["dust3r"]
    # keeping the LSM checkpoint's own DUSt3R weights instead
    kept = load_model(lsm, keep_lsm_dust3r=True, keep_lsm_lseg=True, config=tiny()).state_dict()
    assert all(torch.equal(kept[k], v) for k, v in tiny_state.items())


def test_official_rule_needs_the_separate_files_or_an_explicit_choice(official_files):
    lsm, dust3r = official_files
    with pytest.raises(CheckpointError, match="--dust3r.*--keep-lsm-dust3r"):
        load_model(lsm, keep_lsm_lseg=True, config=tiny())
    with pytest.raises(CheckpointError, match="--lseg"):
        load_model(lsm, dust3r=dust3r, config=tiny())
    with pytest.raises(CheckpointError, match="contradictory"):
        assemble_official(lsm, dust3r=dust3r, keep_lsm_dust3r=True, keep_lsm_lseg=True)
    with pytest.raises(CheckpointError, match="'dust3r' weights file, but a 'lsm' file"):
        assemble_official(dust3r, keep_lsm_dust3r=True, keep_lsm_lseg=True)
    with pytest.raises(CheckpointError, match="not a whole model"):
        load_model(dust3r)


def test_convert_writes_a_self_contained_file_and_inspect_reports_fit(official_files, tiny_state,
                                                                      tmp_path, capsys):
    lsm, dust3r = official_files
    out = tmp_path / "model.pt"
    rc = convert_main(["convert", "--lsm", str(lsm), "--dust3r", str(dust3r), "--keep-lsm-lseg",
                       "--config", "tiny", "--out", str(out)])
    assert rc == 0
    ckpt = read_checkpoint_file(out)
    assert ckpt["format"] == "lsm_ros/1" and ckpt["config"]["name"] == "tiny"
    assert len(ckpt["meta"]["sha256"][lsm.name]) == 64
    model = load_model(out)  # no other file needed any more
    key = DUST3R_PREFIX + "patch_embed.proj.weight"
    assert torch.equal(model.state_dict()[key], tiny_state[key] + 1.0)
    capsys.readouterr()
    assert convert_main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layout:   lsm_ros" in text and "fits config 'tiny': yes" in text
    assert convert_main(["inspect", str(lsm), "--config", "tiny"]) == 0
    assert "args.model = LSM_Dust3R" in capsys.readouterr().out
    # the DUSt3R file alone is checked against the dust3r part of the configuration
    assert convert_main(["inspect", str(dust3r), "--config", "tiny"]) == 0
    assert convert_main(["inspect", str(dust3r), "--config", "paper"]) == 1
    assert "shape mismatches" in capsys.readouterr().out


def test_lsm_ros_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = LSM(tiny()).eval()
    path = save_checkpoint(model, tmp_path / "m.pt", meta={"note": "x"})
    loaded = load_model(path)
    assert loaded.meta["note"] == "x"
    img1, img2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(img1, img2), loaded(img1, img2)
    assert torch.equal(a.pts1, b.pts1) and torch.equal(a.gaussians.features, b.gaussians.features)


# ----------------------------------------------------------------------------- refusals
class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _valid_file(tmp_path):
    path = tmp_path / "valid.pt"
    save_checkpoint(LSM(tiny()), path)
    return path


def test_corrupt_truncated_empty_and_non_checkpoint_files_are_refused(tmp_path):
    valid = _valid_file(tmp_path).read_bytes()
    cases = {
        "empty.pt": b"",
        "truncated.pt": valid[: len(valid) // 2],
        "garbage.pt": bytes(range(256)) * 64,
        "text.pth": b"this is not a checkpoint\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=r"empty|corrupt|truncated|cannot read") as err:
            load_model(tmp_path / name)
        assert name in str(err.value)
        assert "weights_only" not in str(err.value)  # torch's advice, cut mid-sentence, is not quoted
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_model(tmp_path / "list.pt")
    torch.save({"model": {"a": "not a tensor"}, "format": "lsm_ros/1", "config": {}}, tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match="not tensors"):
        load_model(tmp_path / "s.pt")


SYSTEM = f"{os.system.__module__}.system"  # how a pickle names os.system: posix.system on Linux


def _assert_refused_naming(path, name):
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    text = str(err.value)
    assert str(path) in text and f"Python object {name}" in text, text
    assert "could run code" in text and "not loaded" in text and "no code ran" in text, text
    assert "weights_only" not in text, text  # never the advice to load it unsafely


def test_pickle_with_code_is_refused_naming_the_object_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "lsm_ros/1", "model": {"w": torch.zeros(1)}, "x": _RunsCode(marker)}, path)
    _assert_refused_naming(path, SYSTEM)
    # raw pickles (not torch zip archives): protocol 2 as torch.save writes; protocols 0 and 4 stop
    # torch's unpickler before it reaches the object, so its error text does not name it
    for protocol in (2, 0, 4):
        raw = tmp_path / f"evil_raw{protocol}.pt"
        raw.write_bytes(pickle.dumps({"model": _RunsCode(marker)}, protocol=protocol))
        _assert_refused_naming(raw, SYSTEM)
    legacy = tmp_path / "evil_legacy.pt"
    torch.save({"model": _RunsCode(marker)}, legacy, _use_new_zipfile_serialization=False)
    _assert_refused_naming(legacy, SYSTEM)
    # without the listing made before loading, the name comes from torch's refusal text
    monkeypatch.setattr(weights_file, "_needed_globals", lambda path: [])
    for evil in (path, tmp_path / "evil_raw2.pt", legacy):
        _assert_refused_naming(evil, SYSTEM)
    torch.save({"model": {"w": torch.zeros(1)}, "x": eval}, path)  # torch writes "GLOBAL eval"
    _assert_refused_naming(path, "builtins.eval")
    assert not marker.exists()


def test_legacy_format_file_with_training_metadata_loads(tmp_path, tiny_state):
    """Non-zip (pre-1.6) files: metadata allowed as in zip files, but no CRC to check."""
    path = tmp_path / "checkpoint-final.pth"
    torch.save({"model": tiny_state, "args": NS, "epoch": 99}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    wf = read_weights(path, expect="lsm")
    assert wf.meta["args.model"].startswith("LSM_Dust3R")
    assert all(torch.equal(wf.state[k], v) for k, v in tiny_state.items())


def _flip_a_data_byte(path, member_suffix="/data/"):
    """Flip one byte in the middle of the largest tensor-data member of a zip archive (not in a
    zip header); return that member's name."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if member_suffix in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    head = info.header_offset
    assert data[head:head + 4] == b"PK\x03\x04"  # the member's local header
    name_len, extra_len = struct.unpack("<HH", data[head + 26:head + 30])
    start = head + 30 + name_len + extra_len
    assert data[head + 30:head + 30 + name_len].decode() == info.filename
    original = bytes(data[start:start + info.file_size])
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as z:  # the archive structure is intact, one data byte differs
        assert z.getinfo(info.filename).file_size == info.file_size
    changed = [i for i, (a, b) in enumerate(zip(original, data[start:start + info.file_size])) if a != b]
    assert changed == [info.file_size // 2]
    return info.filename


def test_a_flipped_byte_in_tensor_data_is_refused_naming_the_member(tmp_path, tiny_state):
    path = tmp_path / "model.pt"
    torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(), "model": tiny_state}, path)
    load_model(path)  # intact: loads
    member = _flip_a_data_byte(path)
    for read in (load_model, read_checkpoint_file, read_weights):
        with pytest.raises(CheckpointError, match=r"corrupt.*re-download") as err:
            read(path)
        assert str(path) in str(err.value)
        assert re.search(rf"member '{re.escape(member)}'.* CRC-32", str(err.value)), str(err.value)
    # the CLIP role's TorchScript archive is checked too (torch.jit.load does not either)
    scripted = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(64, 64)), str(scripted))
    member = _flip_a_data_byte(scripted)
    with pytest.raises(CheckpointError, match=rf"corrupt: member '{re.escape(member)}'"):
        read_weights(scripted, expect="clip")


def test_files_written_without_crc_still_load(tmp_path, tiny_state):
    """torch.save can skip the CRC (stored as 0): nothing to verify, not a corruption."""
    path = tmp_path / "nocrc.pt"
    before = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(), "model": tiny_state}, path)
    finally:
        torch.serialization.set_crc32_options(before)
    with zipfile.ZipFile(path) as z:
        assert all(i.CRC == 0 for i in z.infolist())
    assert torch.equal(load_model(path).state_dict()[DUST3R_PREFIX + "patch_embed.proj.weight"],
                       tiny_state[DUST3R_PREFIX + "patch_embed.proj.weight"])


def test_a_directory_is_not_reported_as_missing(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for read in (load_model, read_checkpoint_file, read_weights):
        with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file") as err:
            read(folder)
        assert "not found" not in str(err.value)
    with pytest.raises(CheckpointError, match="not found"):
        read_weights(folder / "missing.pt")


def test_the_embedded_model_loads_and_is_crc_checked():
    with zipfile.ZipFile(EMBEDDED_CHECKPOINT) as z:  # every member carries a CRC to verify
        assert all(i.CRC != 0 for i in z.infolist() if i.file_size)
    weights_file.verify_zip_crc(EMBEDDED_CHECKPOINT)
    model = load_model(None)
    assert model.meta["sources"]["model"] == f"{EMBEDDED_CHECKPOINT.name} (lsm_ros)"
    assert not model.training


def test_torchscript_archive_is_refused_as_a_model(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        load_model(path)


def test_wrong_architecture_is_refused_with_the_offending_keys(tmp_path, tiny_state):
    bad_shape = dict(tiny_state)
    key = "gaussian_head.gaussian_proj.weight"
    bad_shape[key] = torch.zeros(7, 7)
    path = tmp_path / "shape.pt"
    torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(), "model": bad_shape}, path)
    with pytest.raises(CheckpointError, match=r"shape mismatches.*gaussian_proj.weight \(7, 7\)"):
        load_model(path)
    missing = {k: v for k, v in tiny_state.items() if not k.startswith("point_transformer.dec.")}
    missing["point_transformer.extra_head.weight"] = torch.zeros(1)
    torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(), "model": missing}, path)
    with pytest.raises(CheckpointError, match=r"missing \d+ keys.*unexpected 1 keys"):
        load_model(path)
    nan = dict(tiny_state)
    nan[key] = torch.full_like(nan[key], float("nan"))
    torch.save({"format": "lsm_ros/1", "config": tiny().to_dict(), "model": nan}, path)
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(path)
    cfg = tiny().to_dict()
    cfg["encoder"]["not_a_field"] = 1
    torch.save({"format": "lsm_ros/1", "config": cfg, "model": tiny_state}, path)
    with pytest.raises(CheckpointError, match="invalid model configuration"):
        load_model(path)
    # a tiny (wrong-size) LSM checkpoint offered as the paper model
    torch.save({"model": tiny_state, "args": NS}, path)
    with pytest.raises(CheckpointError, match=r"do not fit config 'paper'.*shape mismatches"):
        convert_main_out = tmp_path / "x.pt"
        from lsm.convert import convert
        convert(path, convert_main_out, keep_lsm_dust3r=True, keep_lsm_lseg=True, log=lambda *_: None)


def test_lightning_metadata_is_loaded_as_inert_stubs(tmp_path):
    """LSeg's demo_e200.ckpt is a Lightning checkpoint: its hyper-parameter containers are
    replaced by stubs (nothing runs), while the weights come through."""
    mod = types.ModuleType("pytorch_lightning.utilities.parsing")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = mod.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    mod.AttributeDict = AttributeDict
    names = ["pytorch_lightning", "pytorch_lightning.utilities", mod.__name__]
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[mod.__name__] = mod
    try:
        path = tmp_path / "demo_e200.ckpt"
        torch.save({"state_dict": {"net.scratch.head1.weight": torch.ones(2),
                                   "net.pretrained.model.cls_token": torch.zeros(1)},
                    "hyper_parameters": AttributeDict(backbone="clip_vitl16_384"),
                    "epoch": 200, "pytorch-lightning_version": "1.3.5"}, path)
    finally:
        for name in names:
            del sys.modules[name]
    wf = read_weights(path, expect="lseg")
    assert wf.layout == "lseg" and wf.meta["epoch"] == 200
    assert torch.equal(wf.state["lseg_feature_extractor.scratch.head1.weight"], torch.ones(2))


def test_meta_reference_matches_a_real_model():
    ref = model_reference(tiny())
    real = LSM(tiny()).state_dict()
    assert {k: (tuple(v.shape), v.dtype) for k, v in ref.items()} == \
        {k: (tuple(v.shape), v.dtype) for k, v in real.items()}
