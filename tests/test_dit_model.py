"mmfm.dit: patches, positions, shapes, adaLN-Zero, bad input; mmfm.diffusion: objectives and samplers."
import pytest, torch
from mmfm.dit import VideoDiT, DiTConfig, dit_config, patchify, unpatchify, spatial_pos_embed, drop_text
from mmfm.diffusion import (EpsilonObjective, VObjective, FlowObjective, SampleOptions, sampler_for, MovingShapes,
                            CAPTIONS, caption_accuracy, sample_draws)
from mmfm.errors import ShapeError, ConfigError

@pytest.mark.parametrize("p,pt,T,H,W", [(1, 1, 1, 3, 5), (2, 1, 4, 8, 6), (4, 2, 8, 16, 12), (2, 4, 8, 4, 4)])
def test_patchify_unpatchify_identity(p, pt, T, H, W):
    x = torch.randn(2, 3, T, H, W)
    tok = patchify(x, p, pt)
    assert tok.shape == (2, (T // pt) * (H // p) * (W // p), pt * p * p * 3)
    assert torch.equal(unpatchify(tok, (T // pt, H // p, W // p), p, pt), x)

@pytest.mark.parametrize("attention", ["divided", "full"])
@pytest.mark.parametrize("learn_sigma", [False, True])
def test_shapes_and_zero_init(attention, learn_sigma):
    cfg = dit_config("tiny", text_dim=6, attention=attention, learn_sigma=learn_sigma, patch_t=2)
    m = VideoDiT(cfg).eval()
    x = torch.randn(2, 4, 4, 8, 6)
    with torch.no_grad():
        y = m(x, torch.tensor([1.0, 2.0]), torch.randn(2, 3, 6))
    assert y.shape == (2, cfg.out_channels, 4, 8, 6)
    assert y.abs().max() == 0   # zero-initialised head

def test_blocks_start_as_identity_and_time_reaches_blocks():
    torch.manual_seed(0)
    m = VideoDiT(dit_config("tiny", text_dim=6))
    for p in m.final.parameters(): torch.nn.init.normal_(p)
    x, txt = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 3, 6)
    with torch.no_grad():
        # adaLN-Zero: with zero gates, the text cannot change the output yet
        assert torch.equal(m(x, torch.tensor([5.0]), txt), m(x, torch.tensor([5.0]), torch.randn(1, 3, 6)))
        for p in m.parameters(): torch.nn.init.normal_(p, std=0.1)
        a, b = m(x, torch.tensor([5.0]), txt), m(x, torch.tensor([600.0]), txt)
    assert (a - b).abs().max() > 1e-3    # the timestep reaches the blocks

def test_positions_depend_on_input_size():
    a, b = spatial_pos_embed(16, (4, 4), base=4), spatial_pos_embed(16, (8, 8), base=4)
    assert a.shape == (16, 16) and b.shape == (64, 16)
    assert torch.allclose(a[5], b[2 * 8 + 2])  # interpolated: grid 8 covers the same range as grid 4 at half spacing

@pytest.mark.parametrize("shape,t,text,msg", [
    ((1, 4, 3, 8, 8), [1.0], None, "patch_t=2"),
    ((1, 4, 4, 9, 8), [1.0], None, "patch_size=2"),
    ((1, 3, 4, 8, 8), [1.0], None, "expected 4 channels"),
    ((4, 8, 8), [1.0], None, "expected a video [B, C=4, T, H, W]"),
    ((2, 4, 4, 8, 8), [1.0, 2.0], (3, 2, 6), "[B=2, L, 6]"),
    ((2, 4, 4, 8, 8), [1.0, 2.0], (2, 2, 5), "[B=2, L, 6]"),
    ((2, 4, 4, 8, 8), [1.0, 2.0, 3.0], None, "shape [2]"),
])
def test_bad_input(shape, t, text, msg):
    m = VideoDiT(dit_config("tiny", text_dim=6, patch_t=2))
    with pytest.raises(ShapeError) as e:
        m(torch.randn(shape), torch.tensor(t), None if text is None else torch.randn(text))
    assert msg in str(e.value)

def test_bad_config():
    with pytest.raises(ConfigError): VideoDiT(DiTConfig(attention="axial"))
    with pytest.raises(ConfigError): VideoDiT(DiTConfig(activation="relu"))
    with pytest.raises(ConfigError): VideoDiT(DiTConfig(dim=30, heads=5))
    with pytest.raises(ShapeError, match="no text conditioning"):
        VideoDiT(dit_config("tiny"))(torch.randn(1, 4, 2, 8, 8), torch.tensor([1.0]), torch.randn(1, 2, 6))

def test_text_mask_and_dropout():
    torch.manual_seed(0)
    m = VideoDiT(dit_config("tiny", text_dim=6)).eval()
    for p in m.parameters(): torch.nn.init.normal_(p, std=0.1)
    x, txt = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 3, 6)
    mask = torch.tensor([[True, True, False]])
    txt2 = txt.clone(); txt2[:, 2] = 100
    with torch.no_grad():
        assert torch.allclose(m(x, 3.0, txt, mask), m(x, 3.0, txt2, mask), atol=1e-6)   # padding is ignored
    null = torch.zeros(1, 3, 6)
    d = drop_text(torch.ones(4, 3, 6), null, 0.5, torch.tensor([0.1, 0.6, 0.49, 0.5]))
    assert d[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]

def test_per_sample_draws_do_not_depend_on_batching():
    u, e, d = sample_draws(torch.arange(8), 0, 0, (2, 3))
    u2, e2, d2 = sample_draws(torch.arange(4, 8), 0, 0, (2, 3))
    assert torch.equal(u[4:], u2) and torch.equal(e[4:], e2) and torch.equal(d[4:], d2)

def test_toy_data_and_judge():
    ds = MovingShapes(48, jitter=2)
    vids = torch.stack([ds[i][0] for i in range(48)])
    assert caption_accuracy(vids, [CAPTIONS[ds[i][1]] for i in range(48)]) == dict(colour=1.0, direction=1.0, both=1.0)
    # a clip played backwards moves the other way: the judge must notice
    assert caption_accuracy(vids.flip(2), [CAPTIONS[ds[i][1]] for i in range(48)])["direction"] == 0.0
