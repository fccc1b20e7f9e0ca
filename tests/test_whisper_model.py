"""mmfm.whisper.model and .checkpoints against openai-whisper and transformers, same weights; bad checkpoints and inputs."""
import json, os, types, urllib.error, urllib.request, hashlib, shutil
import pytest
import torch
import whisper
from whisper.model import disable_sdpa

from mmfm.errors import CheckpointError, ConfigError, ShapeError
from mmfm.whisper import checkpoints
from mmfm.whisper.checkpoints import load_model, save_openai_checkpoint, _ALIGNMENT_HEADS
from mmfm.whisper.model import Whisper, dims_for, WHISPER_SIZES
from whisper_helpers import TINY_DIMS, model_pair, random_mel, random_whisper

TOL = 1e-4  # fp32, max abs difference of encoder outputs and logits


@pytest.fixture(scope="module", params=["tiny-dims", "real-tiny"])
def pair(request, tmp_path_factory):
    dims = TINY_DIMS if request.param == "tiny-dims" else dims_for("tiny")
    return model_pair(dims, str(tmp_path_factory.mktemp("ckpt") / "random.pt"))


def _tokens(n):
    tok = [50258, 50259, 50359, 50364, 440, 1723, 307, 257, 1500, 13, 50414]
    return torch.tensor([tok] * n)


@torch.no_grad()
def test_encoder_and_logits_match_openai(pair):
    ours, ref = pair
    mel = random_mel(2)
    f_ours, f_ref = ours.embed_audio(mel), ref.embed_audio(mel)
    assert (f_ours - f_ref).abs().max() < TOL
    l_ours, l_ref = ours.logits(_tokens(2), f_ours), ref.logits(_tokens(2), f_ref)
    assert l_ours.shape == (2, 11, ours.dims.n_vocab)
    assert (l_ours - l_ref).abs().max() < TOL
    assert (ours(mel, _tokens(2)) - l_ref).abs().max() < TOL


@torch.no_grad()
def test_kv_cache_steps_equal_full_pass(pair):
    ours, _ = pair
    feats = ours.embed_audio(random_mel(2))
    full = ours.logits(_tokens(2), feats)
    cache = ours.new_kv_cache(2, max_len=11)
    steps = [ours.logits(_tokens(2)[:, :4], feats, cache)] + [ours.logits(_tokens(2)[:, i:i + 1], feats, cache) for i in range(4, 11)]
    assert (torch.cat(steps, 1) - full).abs().max() < TOL
    # beam search: two hypotheses of ONE clip (cross-attention keys shared); reordering the cache rows = reordering the inputs
    hyp = _tokens(2); hyp[1, 5] = 6000
    one = feats[:1]
    cache2 = ours.new_kv_cache(2, max_len=11)
    ours.logits(hyp[:, :10], one, cache2)
    cache2.reorder([1, 1])
    step = ours.logits(torch.tensor([[13], [14]]), one, cache2)[:, 0]
    expect = ours.logits(torch.cat([hyp[[1, 1], :10], torch.tensor([[13], [14]])], 1), one)[:, -1]
    assert (step - expect).abs().max() < TOL


@torch.no_grad()
def test_cross_qk_matches_openai_scores(pair):
    ours, ref = pair
    feats = ours.embed_audio(random_mel(1))
    ref_qk = [None] * ref.dims.n_text_layer
    hooks = [b.cross_attn.register_forward_hook(lambda m, i, o, k=k: ref_qk.__setitem__(k, o[-1])) for k, b in enumerate(ref.decoder.blocks)]
    try:
        with disable_sdpa(): ref_logits = ref.logits(_tokens(1), feats)
    finally:
        for h in hooks: h.remove()
    logits, qks = ours.decoder(_tokens(1), feats, return_cross_qk=True)
    assert (logits - ref_logits).abs().max() < TOL
    assert len(qks) == ours.dims.n_text_layer
    for a, b in zip(qks, ref_qk):
        assert a.shape == (1, ours.dims.n_text_head, 11, 1500) and a.dtype == torch.float32
        assert (a - b).abs().max() < TOL
    assert all((a - b).abs().max() < TOL for a, b in zip(ours.cross_qk(_tokens(1), feats), ref_qk))


@pytest.mark.slow
@torch.no_grad()
def test_base_dims_match_openai(tmp_path):
    ours, ref = model_pair(dims_for("base"), str(tmp_path / "base.pt"))
    mel = random_mel(1)
    f = ours.embed_audio(mel)
    assert (f - ref.embed_audio(mel)).abs().max() < TOL
    assert (ours.logits(_tokens(1), f) - ref.logits(_tokens(1), f)).abs().max() < TOL


def test_registry_properties_and_alignment_heads():
    assert dims_for("large-v3").n_vocab == 51866 and dims_for("large-v3").n_mels == 128
    assert dims_for("turbo").n_text_layer == 4 and dims_for("large-v2").n_mels == 80
    for name in ["tiny.en", "base", "large-v2", "large-v3", "turbo"]:  # ours on the meta device: no memory, no time
        with torch.device("meta"): ours = Whisper(dims_for(name))
        ref = types.SimpleNamespace(dims=dims_for(name))  # openai's properties only read .dims
        ref.is_multilingual = whisper.model.Whisper.is_multilingual.fget(ref)
        assert (ours.is_multilingual, ours.num_languages) == (ref.is_multilingual, whisper.model.Whisper.num_languages.fget(ref))
    for name in ["tiny", "tiny.en", "base"]:
        ours, ref = Whisper(dims_for(name)), whisper.model.Whisper(whisper.model.ModelDimensions(**vars(dims_for(name))))
        assert torch.equal(ours.alignment_heads, ref.alignment_heads.to_dense())
        ours.set_alignment_heads(_ALIGNMENT_HEADS[name]); ref.set_alignment_heads(_ALIGNMENT_HEADS[name])
        assert torch.equal(ours.alignment_heads, ref.alignment_heads.to_dense())
    with pytest.raises(ConfigError, match="unknown Whisper size"): dims_for("giant")


def test_wrong_mel_shape_is_a_shape_error():
    m = random_whisper(TINY_DIMS)
    with pytest.raises(ShapeError, match=r"\[batch, 80, 3000\]"): m.embed_audio(torch.randn(1, 80, 1000))
    with pytest.raises(ShapeError): m.embed_audio(torch.randn(80, 3000))
    with pytest.raises(ShapeError, match="at most 448 tokens"): m.logits(torch.zeros(1, 449, dtype=torch.long), torch.randn(1, 1500, 64))


# ---------- checkpoint files ----------

def test_openai_round_trip_and_dtype(tmp_path):
    m = random_whisper(TINY_DIMS)
    path = tmp_path / "m.pt"; save_openai_checkpoint(m, path)
    for in_memory in (False, True):
        back = load_model(str(path), device="cpu", in_memory=in_memory)
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    half = load_model(str(path), device="cpu", dtype=torch.bfloat16)
    assert half.decoder.token_embedding.weight.dtype == torch.bfloat16


def test_bad_checkpoint_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"): load_model(str(bad), device="cpu")
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="expected keys 'dims' and 'model_state_dict'"): load_model(str(bad), device="cpu")
    torch.save({"dims": {"n_mels": 80}, "model_state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="'dims' must have exactly the fields"): load_model(str(bad), device="cpu")
    sd = dict(random_whisper(TINY_DIMS).state_dict())
    sd["decoder.blocks.0.mlp.0.weight"] = torch.zeros(3, 3)
    sd["encoder.extra"] = torch.zeros(1)
    del sd["encoder.ln_post.bias"]
    torch.save({"dims": vars(TINY_DIMS), "model_state_dict": sd}, bad)
    with pytest.raises(CheckpointError) as e: load_model(str(bad), device="cpu")
    msg = str(e.value)
    assert "missing (1): encoder.ln_post.bias" in msg and "unexpected (1): encoder.extra" in msg
    assert "decoder.blocks.0.mlp.0.weight: checkpoint (3, 3) vs model (256, 64)" in msg
    with pytest.raises(CheckpointError, match="not a released model"): load_model(str(tmp_path / "missing.pt"))


def _offline(monkeypatch):
    def no_network(*a, **k): raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def test_offline_model_name_says_what_to_fetch(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(CheckpointError) as e: load_model("tiny.en", download_root=str(tmp_path / "cache"))
    msg = str(e.value)
    assert checkpoints._MODELS["tiny.en"] in msg and str(tmp_path / "cache" / "tiny.en.pt") in msg


def test_name_loads_from_checksummed_cache_and_rejects_corrupt_download(tmp_path, monkeypatch):
    _offline(monkeypatch)
    src = tmp_path / "tiny.pt"; save_openai_checkpoint(random_whisper(dims_for("tiny"), std=0.02), src)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setitem(checkpoints._MODELS, "tiny", f"https://example.invalid/{sha}/tiny.pt")
    cache = tmp_path / "cache"; cache.mkdir(); shutil.copy(src, cache / "tiny.pt")
    m = load_model("tiny", device="cpu", download_root=str(cache))
    assert m.alignment_heads.sum() == 6 and not m.alignment_heads[0].any()  # openai's heads for tiny, not the default
    # a corrupt cached file is fetched again; a download with the wrong hash is refused
    (cache / "tiny.pt").write_bytes(b"corrupt")
    class Resp:
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def read(self): return b"corrupt again"
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Resp())
    with pytest.raises(CheckpointError, match="SHA-256"): load_model("tiny", device="cpu", download_root=str(cache))


# ---------- Hugging Face format ----------

def _hf_model(tmp_path, seed=0, alignment_heads=None):
    from transformers import WhisperConfig, WhisperForConditionalGeneration
    cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_source_positions=1500, max_target_positions=448)
    torch.manual_seed(seed)
    hf = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "embed_positions" not in name or "decoder" in name: p.copy_(0.1 * torch.randn_like(p) + (1 if "layer_norm.weight" in name else 0))
    d = tmp_path / "hf"; hf.save_pretrained(d)
    if alignment_heads is not None:
        gen = json.loads((d / "generation_config.json").read_text()); gen["alignment_heads"] = alignment_heads
        (d / "generation_config.json").write_text(json.dumps(gen))
    return hf, d


@torch.no_grad()
def test_hf_directory_matches_transformers(tmp_path):
    hf, d = _hf_model(tmp_path, alignment_heads=[[1, 2], [2, 0]])
    ours = load_model(str(d), device="cpu")
    mel, tokens = random_mel(2), _tokens(2)
    ref = hf(input_features=mel, decoder_input_ids=tokens).logits
    assert (ours(mel, tokens) - ref).abs().max() < TOL
    enc = hf.model.encoder(mel).last_hidden_state
    assert (ours.embed_audio(mel) - enc).abs().max() < TOL
    assert ours.alignment_heads.nonzero().tolist() == [[1, 2], [2, 0]]


def test_hf_directory_strict_errors(tmp_path):
    from safetensors.torch import load_file, save_file
    _, d = _hf_model(tmp_path)
    sd = load_file(str(d / "model.safetensors"))
    sd["model.decoder.layers.0.fc1.weight"] = torch.zeros(10, 64)
    sd["model.decoder.layers.0.new_adapter.weight"] = torch.zeros(2)
    save_file(sd, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError) as e: load_model(str(d), device="cpu")
    assert "decoder.blocks.0.new_adapter.weight" in str(e.value) and "decoder.blocks.0.mlp.0.weight: checkpoint (10, 64)" in str(e.value)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"): load_model(str(d), device="cpu")
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"): load_model(str(d), device="cpu")


@torch.no_grad()
def test_hf_pytorch_model_bin(tmp_path):
    from safetensors.torch import load_file
    hf, d = _hf_model(tmp_path, seed=1)
    torch.save(load_file(str(d / "model.safetensors")), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    ours = load_model(str(d), device="cpu")
    mel, tokens = random_mel(1), _tokens(1)
    assert (ours(mel, tokens) - hf(input_features=mel, decoder_input_ids=tokens).logits).abs().max() < TOL
    assert torch.equal(ours.alignment_heads, Whisper(ours.dims).alignment_heads)  # no generation_config heads: the default


def test_hf_repo_id_offline_is_a_checkpoint_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="cannot fetch 'openai/whisper-tiny'.*local directory"):
        load_model("openai/whisper-tiny", download_root=str(tmp_path))
