"Parity of mmfm.dit.VideoDiT with diffusers' LatteTransformer3DModel (same random weights), and checkpoint loading."
import pytest, torch, torch.nn as nn
from diffusers import LatteTransformer3DModel
from mmfm.dit import VideoDiT, latte_config, latte_key
from mmfm.errors import CheckpointError, ConfigError

TOL = 1e-4  # max abs difference allowed between VideoDiT and diffusers (float32)

def tiny_latte(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
               cross_attention_dim=16, attention_bias=True, sample_size=8, patch_size=2, activation_fn="geglu",
               norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=12,
               video_length=4)
    m = LatteTransformer3DModel(**{**cfg, **kw}).eval()
    for p in m.parameters(): nn.init.normal_(p, std=0.2)   # no zero-initialised parts left untested
    return m

CASES = {
    "geglu-sigma": dict(),
    "gelu-tanh-nobias-affine": dict(activation_fn="gelu-approximate", attention_bias=False, norm_elementwise_affine=True,
                                    out_channels=None, norm_eps=1e-5),
    "3layers-patch1-16frames": dict(num_layers=3, patch_size=1, video_length=16, sample_size=4),
    "big-sample-interp": dict(sample_size=128, patch_size=16, num_attention_heads=4, attention_head_dim=4),  # interpolation_scale 2
}

@pytest.mark.parametrize("name", list(CASES))
def test_latte_parity(name):
    kw = CASES[name]
    latte = tiny_latte(**kw)
    ours = VideoDiT.from_diffusers(latte).eval()
    c = latte.config
    T, S = c.video_length, c.sample_size
    torch.manual_seed(1)
    x, t, txt = torch.randn(2, c.in_channels, T, S, S), torch.tensor([3.0, 871.0]), torch.randn(2, 5, c.caption_channels)
    with torch.no_grad():
        ref = latte(x, timestep=t, encoder_hidden_states=txt).sample
        out = ours(x, t, txt)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < TOL

def test_parity_other_resolution_and_single_frame():
    "Positions are recomputed for a non-square frame, and a one-frame clip skips temporal positions, as in diffusers."
    latte = tiny_latte(video_length=1)
    ours = VideoDiT.from_diffusers(latte).eval()
    x, t, txt = torch.randn(2, 4, 1, 12, 6), torch.tensor([5.0, 50.0]), torch.randn(2, 3, 12)
    with torch.no_grad():
        ref = latte(x, timestep=t, encoder_hidden_states=txt).sample
        out = ours(x, t, txt)
    assert (out - ref).abs().max().item() < TOL

def test_from_directory(tmp_path):
    latte = tiny_latte(seed=3)
    latte.save_pretrained(tmp_path / "latte")
    ours = VideoDiT.from_diffusers(tmp_path / "latte").eval()
    x, t, txt = torch.randn(1, 4, 4, 8, 8), torch.tensor([10.0]), torch.randn(1, 2, 12)
    with torch.no_grad():
        assert (ours(x, t, txt) - latte(x, timestep=t, encoder_hidden_states=txt).sample).abs().max() < TOL

def test_strict_checks(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"): VideoDiT.from_diffusers(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no VideoDiT counterpart"): latte_key("pos_embed.norm.weight")
    cfg = dict(tiny_latte().config); cfg["norm_type"] = "layer_norm"
    with pytest.raises(ConfigError, match="ada_norm_single"): latte_config(cfg)
    # a checkpoint whose weight has the wrong shape is refused, naming the key
    latte = tiny_latte()
    latte.proj_out = nn.Linear(16, 31)
    with pytest.raises(CheckpointError, match="proj_out.weight -> final.proj.weight: shape"): VideoDiT.from_diffusers(latte)
