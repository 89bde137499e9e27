"""Text encoders: label validation, offline MiniLM embeddings, CLIP text tower from local weights."""
import argparse
import copy

import pytest
import torch

from lsm.semantics.labels import DEFAULT_LABELS
from lsm.semantics.text_encoder import (
    ClipTextEncoder,
    MiniLMTextEncoder,
    build_openai_clip_vit_b32,
    build_text_encoder,
    validate_label,
)

# ----------------------------------------------------------------------------- validation

def test_validate_label_strips_and_accepts_normal_labels():
    assert validate_label("  coffee table \t") == "coffee table"
    assert validate_label("x" * 128) == "x" * 128


@pytest.mark.parametrize("label,msg", [
    ("", "empty label"), ("   ", "empty label"), ("x" * 129, "longer than 128"),
    ("chair\nDROP", "non-printable"), ("a\x00b", "non-printable"), (3, "must be a string"),
])
def test_validate_label_rejects(label, msg):
    with pytest.raises(ValueError, match=msg):
        validate_label(label)


def test_validate_label_custom_length():
    with pytest.raises(ValueError, match="longer than 4"):
        validate_label("sofas", max_len=4)


# ----------------------------------------------------------------------------- MiniLM

@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder()


def test_minilm_embeddings_are_normalised_and_deterministic(minilm):
    e = minilm.encode(list(DEFAULT_LABELS))
    assert e.shape == (8, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=-1), torch.ones(8), atol=1e-5)
    fresh = MiniLMTextEncoder()  # a second load gives identical numbers
    assert torch.allclose(fresh.encode(list(DEFAULT_LABELS)), e, atol=1e-6)
    assert torch.equal(minilm.encode("sofa")[0], e[5])  # cached value equals batched value


def test_minilm_synonyms_are_closer_than_unrelated_words(minilm):
    couch, sofa, floor = minilm.encode(["couch", "sofa", "floor"])
    assert couch @ sofa > couch @ floor + 0.2


@pytest.mark.parametrize("query,expected", [
    ("couch", "sofa"), ("desk", "table"), ("armchair", "chair"), ("stool", "chair"),
    ("carpet", "floor"), ("mattress", "bed"),
])
def test_minilm_synonym_lands_on_the_right_lsm_class(minilm, query, expected):
    classes = minilm.encode(list(DEFAULT_LABELS))
    sim = minilm.encode(query)[0] @ classes.T
    assert DEFAULT_LABELS[int(sim.argmax())] == expected


def test_minilm_lru_cache_evicts_oldest():
    enc = MiniLMTextEncoder(cache_size=2)
    first = enc.encode(["wall", "floor"])
    enc.encode(["wall"])  # refresh "wall"
    enc.encode(["bed"])  # evicts "floor"
    assert list(enc._cache) == ["wall", "bed"]
    assert torch.allclose(enc.encode(["floor"])[0], first[1], atol=1e-6)


def test_encoder_rejects_bad_labels(minilm):
    with pytest.raises(ValueError, match="empty label"):
        minilm.encode(["chair", " "])
    with pytest.raises(ValueError, match="no labels"):
        minilm.encode([])


def test_prompt_template_must_have_placeholder():
    with pytest.raises(ValueError, match="prompt_template"):
        MiniLMTextEncoder(prompt_template="a photo")


def test_build_text_encoder_factory(minilm, tmp_path):
    enc = build_text_encoder("minilm")
    assert isinstance(enc, MiniLMTextEncoder) and enc.dim == 384
    assert torch.allclose(enc.encode("bed"), minilm.encode("bed"), atol=1e-6)
    with pytest.raises(ValueError, match="weights_path"):
        build_text_encoder("clip")
    with pytest.raises(ValueError, match="unknown text encoder"):
        build_text_encoder("bert")
    with pytest.raises(FileNotFoundError):
        build_text_encoder("minilm", weights_path=tmp_path)


# ----------------------------------------------------------------------------- CLIP

@pytest.fixture(scope="module")
def random_clip():
    torch.manual_seed(0)
    return build_openai_clip_vit_b32().eval()


def _text_state_dict(clip, prefix=""):
    return {prefix + k: v.half() for k, v in clip.state_dict().items() if not k.startswith("visual.")}


def test_clip_tokenizer_and_text_tower_work_offline(random_clip):
    enc = ClipTextEncoder(random_clip)
    e = enc.encode(["chair", "a red sofa"])
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(e[0], e[1])


@pytest.mark.parametrize("layout", ["plain", "lsm_checkpoint", "lseg_ckpt"])
def test_clip_from_weights_reproduces_source_model(random_clip, tmp_path, layout):
    """fp16 OpenAI-style, LSM (``model`` / ``lseg_feature_extractor.clip_pretrained.``) and
    LSeg (``state_dict`` / ``net.clip_pretrained.``) files all load into the same text tower."""
    if layout == "plain":
        obj = _text_state_dict(random_clip)
        obj["context_length"] = torch.tensor(77)  # OpenAI JIT archives carry these extras
    elif layout == "lsm_checkpoint":
        obj = {"model": {**_text_state_dict(random_clip, "lseg_feature_extractor.clip_pretrained."),
                         "gaussian_head.gaussian_proj.weight": torch.zeros(120, 64)}, "epoch": 3,
               "args": argparse.Namespace(model="LSM_Dust3R(config=dict())", lr=1e-4)}
    else:
        obj = {"state_dict": _text_state_dict(random_clip, "net.clip_pretrained.")}
    path = tmp_path / "clip.pt"
    torch.save(obj, path)
    loaded = ClipTextEncoder.from_weights(path)
    ref = ClipTextEncoder(random_clip)
    labels = list(DEFAULT_LABELS)
    cos = (loaded.encode(labels) * ref.encode(labels)).sum(-1)
    assert (cos > 0.999).all()  # equal up to the fp16 storage
    assert build_text_encoder("clip", weights_path=path).dim == 512


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_clip_from_openai_torchscript_archive(random_clip, tmp_path):
    """OpenAI distributes ViT-B-32.pt as an fp16 TorchScript archive; its weights load too."""
    text_only = copy.deepcopy(random_clip).half()
    text_only.visual = torch.nn.Identity()
    tokens = ClipTextEncoder(random_clip).tokenizer(["chair"])
    traced = torch.jit.trace_module(text_only, {"encode_text": tokens}, check_trace=False)
    path = tmp_path / "ViT-B-32.pt"
    traced.save(str(path))
    del traced, text_only
    loaded = ClipTextEncoder.from_weights(path)
    labels = list(DEFAULT_LABELS)
    cos = (loaded.encode(labels) * ClipTextEncoder(random_clip).encode(labels)).sum(-1)
    assert (cos > 0.999).all()


def test_clip_from_weights_errors(tmp_path, random_clip):
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipTextEncoder.from_weights(tmp_path / "missing.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="could not read CLIP weights"):
        ClipTextEncoder.from_weights(bad)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ValueError, match="not a CLIP ViT-B/32 checkpoint"):
        ClipTextEncoder.from_weights(other)
    wrong = _text_state_dict(random_clip)
    wrong["text_projection"] = torch.zeros(512, 768)
    wrong_path = tmp_path / "wrong.pt"
    torch.save(wrong, wrong_path)
    with pytest.raises(ValueError, match="wrong shapes"):
        ClipTextEncoder.from_weights(wrong_path)


def test_the_runtime_frees_the_clip_image_tower_and_keeps_the_text_embeddings(random_clip):
    """The paper LSeg carries a whole CLIP; lsm_node runs only its text tower
    (lsm.perception.release_unused_weights): the image tower's weights go, label embeddings
    stay bit-identical, and a model without one is left alone."""
    from lsm.perception import release_unused_weights

    holder = torch.nn.Module()
    holder.lseg_feature_extractor = torch.nn.Module()
    holder.lseg_feature_extractor.clip_pretrained = copy.deepcopy(random_clip)
    labels = ["chair", "coffee table", "floor"]
    before = ClipTextEncoder(holder.lseg_feature_extractor.clip_pretrained).encode(labels)
    image_tower = sum(p.numel() for p in random_clip.visual.parameters())
    total = sum(p.numel() for p in holder.parameters())
    assert release_unused_weights(holder) == image_tower > 80_000_000
    assert sum(p.numel() for p in holder.parameters()) == total - image_tower
    assert not any(".visual." in k for k in holder.state_dict())
    after = ClipTextEncoder(holder.lseg_feature_extractor.clip_pretrained).encode(labels)
    assert torch.equal(before, after)
    assert release_unused_weights(holder) == 0
    assert release_unused_weights(torch.nn.Linear(2, 2)) == 0
