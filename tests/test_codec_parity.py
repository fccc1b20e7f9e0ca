"""Parity of mmfm.codec with transformers' EncodecModel on the same weights.

Tolerances: codes must be *identical*; decoded audio within ATOL = 1e-4 (absolute, float32). Measured differences are
about 1e-7 (float rounding), so a real bug (a wrong padding, a skipped ELU) fails by orders of magnitude.
"""
import pytest
import torch
from transformers import EncodecConfig, EncodecModel
from mmfm.codec import Codec, CodecConfig, convert_transformers_state_dict, load_strict
from mmfm.errors import CheckpointError

ATOL = 1e-4  # decoded audio, absolute
TINY = dict(sampling_rate=8000, num_filters=4, upsampling_ratios=[4, 2], hidden_size=16, num_lstm_layers=1,
            codebook_size=32, target_bandwidths=[5.0, 10.0, 20.0])
LAYOUTS = {  # 24 kHz-like: causal, weight norm, 1x1 skips; 32 kHz-like (MusicGen): centred, identity skips
    "24khz": dict(), "32khz": dict(use_causal_conv=False, use_conv_shortcut=False),
    "24khz_groupnorm": dict(norm_type="time_group_norm"), "32khz_2res_stereo": dict(use_causal_conv=False,
    use_conv_shortcut=False, num_residual_layers=2, audio_channels=2, pad_mode="constant"),
    "causal_trim_half": dict(trim_right_ratio=0.5, upsampling_ratios=[5, 3]),
}


def hf_model(seed=0, **overrides):
    """A random transformers EncodecModel; codebooks get random codewords (transformers initialises them to 0)."""
    torch.manual_seed(seed)
    m = EncodecModel(EncodecConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():
        for layer in m.quantizer.layers: layer.codebook.embed.normal_()
    return m


def hf_codes_and_audio(m, x, bw):
    with torch.no_grad():
        codes = m.encode(x, bandwidth=bw).audio_codes[0]               # [B, K, S]
        return codes, m.decode(codes[None], [None]).audio_values


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_codes_and_audio_match_transformers(layout, tmp_path):
    m = hf_model(**LAYOUTS[layout])
    m.save_pretrained(tmp_path)
    ours = Codec.from_pretrained(tmp_path)
    torch.manual_seed(1)
    for T in (1003, 64, 5):                                           # ragged, exact multiple of hop, shorter than a kernel
        x = torch.randn(2, m.config.audio_channels, T) * 0.3
        for bw in m.config.target_bandwidths:
            hf_codes, hf_wav = hf_codes_and_audio(m, x, bw)
            codes = ours.encode(x, bandwidth=bw)
            assert torch.equal(codes, hf_codes), (layout, T, bw)
            with torch.no_grad(): wav = ours.decode(codes)
            assert wav.shape == hf_wav.shape
            assert (wav - hf_wav).abs().max() < ATOL, (layout, T, bw)


def test_default_bandwidth_is_transformers_default():
    m = hf_model(); ours = Codec.from_transformers(m)
    x = torch.randn(1, 1, 400)
    with torch.no_grad(): hf = m.encode(x).audio_codes[0]
    assert torch.equal(ours.encode(x), hf) and ours.num_codebooks == hf.shape[1] == 1


def test_old_weight_norm_names_and_bin_format(tmp_path):
    m = hf_model()
    sd = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
          for k, v in m.state_dict().items()}
    assert any(k.endswith("weight_g") for k in sd)
    m.config.save_pretrained(tmp_path)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    ours = Codec.from_pretrained(tmp_path)
    x = torch.randn(1, 1, 700)
    assert torch.equal(ours.encode(x, 20.0), hf_codes_and_audio(m, x, 20.0)[0])


def test_from_transformers_object_and_config():
    m = hf_model(seed=3, **LAYOUTS["32khz"])
    ours = Codec.from_transformers(m)
    x = torch.randn(1, 1, 555)
    hf_codes, hf_wav = hf_codes_and_audio(m, x, 10.0)
    assert torch.equal(ours.encode(x, 10.0), hf_codes)
    fresh = Codec.from_transformers(m.config)                         # a config gives a random codec of that layout
    assert fresh.config == ours.config
    assert set(fresh.state_dict()) == set(ours.state_dict())


def test_save_pretrained_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    ours = Codec(CodecConfig.from_name("tiny")).eval()
    ours.save_pretrained(tmp_path)
    m = EncodecModel.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 1, 1000) * 0.2
    for bw in ours.config.target_bandwidths:
        hf_codes, hf_wav = hf_codes_and_audio(m, x, bw)
        codes = ours.encode(x, bw)
        assert torch.equal(codes, hf_codes)
        with torch.no_grad(): assert (ours.decode(codes) - hf_wav).abs().max() < ATOL


def test_strict_loading_names_offenders(tmp_path):
    m = hf_model()
    cfg = CodecConfig.from_transformers(m.config)
    sd = dict(m.state_dict())
    sd.pop("decoder.layers.0.conv.bias")
    sd["encoder.layers.0.conv.parametrizations.weight.original1"] = torch.zeros(4, 1, 3)
    with pytest.raises(CheckpointError, match="decoder.conv_in.bias") as e:
        load_strict(Codec(cfg), convert_transformers_state_dict(sd, cfg))
    assert "encoder.conv_in.weight_v" in str(e.value) and "shape" in str(e.value)
    with pytest.raises(CheckpointError, match="encoder.layers.99.conv.bias"):
        convert_transformers_state_dict({**m.state_dict(), "encoder.layers.99.conv.bias": torch.zeros(1)}, cfg)
    with pytest.raises(CheckpointError, match="config.json"):
        Codec.from_pretrained(tmp_path)                                # empty directory
    (tmp_path / "config.json").write_text(m.config.to_json_string())
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Codec.from_pretrained(tmp_path)                                # config but no weights
    with pytest.raises(CheckpointError, match="neither a checkpoint directory"):
        Codec.from_pretrained(tmp_path / "missing" / "dir")


REAL = {"encodec_24khz": (dict(), (1.5, 6.0, 24.0)),
        "encodec_32khz": (dict(sampling_rate=32000, num_filters=64, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
                               target_bandwidths=[2.2], use_causal_conv=False, use_conv_shortcut=False), (2.2,))}


def _real_dims_check(name, tmp_path):
    overrides, bandwidths = REAL[name]
    torch.manual_seed(0)
    m = EncodecModel(EncodecConfig(**overrides)).eval()              # the released layout, random weights
    with torch.no_grad():
        for layer in m.quantizer.layers: layer.codebook.embed.normal_(std=0.1)
    m.save_pretrained(tmp_path)
    ours = Codec.from_pretrained(tmp_path)
    assert ours.config == CodecConfig.from_name(name)
    x = torch.randn(1, 1, ours.sample_rate) * 0.1                     # one second
    for bw in bandwidths:
        hf_codes, hf_wav = hf_codes_and_audio(m, x, bw)
        codes = ours.encode(x, bw)
        assert codes.shape == (1, ours.config.codebooks_for_bandwidth(bw), ours.frame_rate)
        assert torch.equal(codes, hf_codes), bw
        with torch.no_grad(): assert (ours.decode(codes) - hf_wav).abs().max() < ATOL


def test_real_24khz_dims(tmp_path):
    """facebook/encodec_24khz's layout (15M parameters) with random weights: about 8 s on one CPU core."""
    _real_dims_check("encodec_24khz", tmp_path)


def test_real_32khz_dims(tmp_path):
    """facebook/encodec_32khz's layout (MusicGen's codec, 56M parameters) with random weights: about 5 s."""
    _real_dims_check("encodec_32khz", tmp_path)
