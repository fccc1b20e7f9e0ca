"""mmfm.codec on its own: shapes, bitrate arithmetic, the quantiser's training devices, bad input, training."""
import math
import pytest
import torch
from mmfm.codec import (CODEC_CONFIGS, Codec, CodecConfig, Codebook, ResidualVectorQuantizer, SEANetEncoder,
                        extra_padding, kmeans, mel_distance, nearest_codeword, random_segments, snr_db, train_codec)
from mmfm.errors import AudioError, ConfigError, ShapeError

TINY = CodecConfig.from_name("tiny")


@pytest.fixture
def codec():
    torch.manual_seed(0)
    return Codec(TINY).eval()


@pytest.mark.parametrize("name,hop,rate,kmax", [("tiny", 64, 250, 8), ("encodec_24khz", 320, 75, 32), ("encodec_32khz", 640, 50, 4)])
def test_presets(name, hop, rate, kmax):
    cfg = CodecConfig.from_name(name)
    assert (cfg.hop_length, cfg.frame_rate, cfg.num_quantizers) == (hop, rate, kmax)
    for bw in cfg.target_bandwidths:   # bits/s = frame_rate * K * log2(N), rounded down to whole codebooks
        K = cfg.codebooks_for_bandwidth(bw)
        assert K * rate * math.log2(cfg.codebook_size) <= bw * 1000 < (K + 1) * rate * math.log2(cfg.codebook_size)


@pytest.mark.parametrize("T", [1, 63, 64, 65, 1000])
def test_lengths(codec, T):
    x = torch.randn(2, 1, T) * 0.1
    codes = codec.encode(x, 12.0)
    assert codes.shape == (2, 8, math.ceil(T / 64)) and codes.dtype == torch.long
    with torch.no_grad():
        assert codec.decode(codes).shape == (2, 1, codes.shape[-1] * 64)
        assert codec.decode(codes, length=T).shape == (2, 1, T)


def test_extra_padding_completes_last_window():
    for L in range(1, 40):
        for k, s in ((4, 2), (10, 5), (7, 1), (16, 8)):
            P = k - s
            e = extra_padding(L, k, s, P)
            assert e >= 0 and (L + P + e - k) % s == 0 and (L + P + e - k) // s + 1 == math.ceil(L / s)


def test_causal_encoder_ignores_future():
    torch.manual_seed(0)
    enc = SEANetEncoder(TINY).eval()
    x = torch.randn(1, 1, 2000)
    y = x.clone(); y[..., 1280:] = torch.randn(720)
    with torch.no_grad():
        assert torch.allclose(enc(x)[..., :20], enc(y)[..., :20], atol=1e-6)       # frames 0..19 end before 1280
        assert not torch.allclose(enc(x)[..., 20:], enc(y)[..., 20:])
    noncausal = SEANetEncoder(CodecConfig(**{**CODEC_CONFIGS["tiny"], "causal": False})).eval()
    with torch.no_grad(): assert not torch.allclose(noncausal(x)[..., :19], noncausal(y)[..., :19])


def test_nearest_codeword_and_kmeans():
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(300, 8, generator=g), torch.randn(32, 8, generator=g)
    assert torch.equal(nearest_codeword(x, e), torch.cdist(x, e).argmin(-1))
    pts = torch.randn(400, 2, generator=g) * torch.tensor([3.0, 0.5])
    c1, n1 = kmeans(pts, 1, iters=3, generator=g)
    assert torch.allclose(c1[0], pts.mean(0), atol=1e-5) and n1.tolist() == [400.0]
    c, n = kmeans(pts, 6, iters=30, generator=g)
    a = nearest_codeword(pts, c)
    assert n.sum() == 400 and torch.equal(n, torch.bincount(a, minlength=6).float())
    inertia = lambda cs: (pts - cs[nearest_codeword(pts, cs)]).pow(2).sum()
    assert inertia(c) < inertia(pts[:6])                              # better than 6 raw samples as centres


def test_ema_moves_codewords_to_data_and_restarts_dead_codes():
    torch.manual_seed(0)
    cb = Codebook(CodecConfig(**{**CODEC_CONFIGS["tiny"], "ema_decay": 0.8})).train()
    data = torch.randn(2048, TINY.hidden_size) * 0.1 + 3.0
    cb(data)                                                      # k-means init
    cb.embed += 1.0; cb.embed_avg.copy_(cb.embed * cb.cluster_size[:, None])   # push codewords off the data
    before = (cb.embed - 3.0).abs().mean()
    for _ in range(30): cb(data)
    assert (cb.embed - 3.0).abs().mean() < before / 2                # EMA pulled them back
    cb.cluster_size[:5] = 0.0; cb.embed[:5] = 100.0                  # five dead codes far away
    cb(data)
    assert (cb.embed[:5] - 3.0).abs().max() < 1.0                    # restarted onto data vectors


def test_rvq_residual_shrinks_and_dropout_and_ste():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(TINY).train()
    z = torch.randn(4, TINY.hidden_size, 128)
    for _ in range(10): rvq(z, n_q=8)
    out = rvq(z.requires_grad_(), n_q=8)
    norms = out.residual_norms.tolist()
    assert all(b < a for a, b in zip(norms, norms[1:]))
    (out.quantized * torch.arange(128.)).sum().backward()
    assert torch.equal(z.grad, torch.arange(128.).expand_as(z))     # straight-through gradient
    assert out.commit_loss > 0
    ks = {rvq(z.detach()).codes.shape[1] for _ in range(60)}
    assert ks == set(range(1, 9))                                    # quantiser dropout covers every K
    rvq.dropout = False
    assert rvq(z.detach()).codes.shape[1] == 8
    rvq.eval(); frozen = [cb.embed.clone() for cb in rvq.codebooks]
    rvq(z.detach(), n_q=8)
    assert all(torch.equal(a, cb.embed) for a, cb in zip(frozen, rvq.codebooks))


def test_bandwidth_selection(codec):
    x = torch.randn(1, 1, 640) * 0.1
    assert codec.num_codebooks == 1 and codec.encode(x).shape[1] == 1
    codec.set_target_bandwidth(6.0)
    assert codec.num_codebooks == 4 and codec.encode(x).shape[1] == 4
    assert torch.equal(codec.encode(x, 12.0)[:, :4], codec.encode(x))   # lower bitrate = prefix of the codes
    with pytest.raises(ConfigError, match=r"\[1.5, 3.0, 6.0, 12.0\]"): codec.set_target_bandwidth(7.0)
    with pytest.raises(ConfigError, match=r"\[1.5, 3.0, 6.0, 12.0\]"): codec.encode(x, bandwidth=24.0)


@pytest.mark.parametrize("bad,err,msg", [
    (torch.randn(1, 1, 100), AudioError, "expects 16000 Hz"),          # with sample_rate=22050 below
    (torch.randn(100), ShapeError, "batch, channels, samples"),
    (torch.randn(1, 2, 100), AudioError, "mean(1, keepdim=True)"),
    (torch.zeros(1, 1, 0), AudioError, "empty"),
    (torch.tensor([[[0.1, float("nan"), 0.2]]]), AudioError, "NaN"),
    (torch.tensor([[[0.1, float("inf"), 0.2]]]), AudioError, "NaN/Inf"),
    (torch.zeros(1, 1, 100, dtype=torch.int16), AudioError, "float"),
])
def test_bad_audio(codec, bad, err, msg):
    sr = 22050 if msg.startswith("expects") else None
    with pytest.raises(err, match=msg.replace("(", r"\(").replace(")", r"\)")):
        codec.encode(bad, sample_rate=sr)
    if sr:
        with pytest.raises(AudioError, match="resample"): codec.encode(bad, sample_rate=sr)


@pytest.mark.parametrize("bad,msg", [
    (torch.full((1, 2, 5), 64), r"outside \[0, 63\]"),
    (torch.full((1, 2, 5), -1), r"outside \[0, 63\]"),
    (torch.zeros(2, 5, dtype=torch.long), "batch, codebooks, frames"),
    (torch.zeros(1, 2, 0, dtype=torch.long), "batch, codebooks, frames"),
    (torch.zeros(1, 9, 5, dtype=torch.long), "has 8"),
    (torch.zeros(1, 2, 5), "integer"),
    ([[[0, 1]]], "integer"),
])
def test_bad_codes(codec, bad, msg):
    with pytest.raises(ShapeError, match=msg): codec.decode(bad)


def test_config_errors():
    with pytest.raises(ConfigError, match="power of two"): CodecConfig(codebook_size=100)
    with pytest.raises(ConfigError, match="weight_norm"): CodecConfig(norm="layer_norm")
    with pytest.raises(ConfigError, match="increasing"): CodecConfig(target_bandwidths=(6.0, 1.5))
    with pytest.raises(ConfigError, match="below one codebook"): CodecConfig(target_bandwidths=(0.1,))
    with pytest.raises(ConfigError, match="causal"): CodecConfig(causal=False, trim_right_ratio=0.5)
    with pytest.raises(ConfigError, match="tiny"): CodecConfig.from_name("giant")


def test_metrics():
    t = torch.arange(8000) / 8000
    x = torch.sin(2 * math.pi * 300 * t)
    assert abs(snr_db(x, 0.99 * x) - 40.0) < 1e-3
    assert mel_distance(x, x, 8000) == 0 and mel_distance(x, 0.5 * x, 8000) > 0.05


def test_training_reduces_loss_and_learns():
    torch.manual_seed(0)
    t = torch.arange(16000) / 16000
    clips = [0.4 * torch.sin(2 * math.pi * f * t) for f in (220.0, 440.0, 880.0)]
    assert random_segments(clips, 5, 300).shape == (5, 1, 300)
    codec, losses = train_codec(Codec(TINY), clips, steps=60, batch_size=2, segment=1024, lr=3e-3, log_every=0)
    assert not codec.training and len(losses) == 60
    assert sum(losses[-10:]) < 0.9 * sum(losses[:10])
    assert all(cb.inited.item() == 1.0 for cb in codec.quantizer.codebooks)


def test_float64_audio_is_cast_to_the_codec(codec):
    x = torch.randn(1, 1, 500) * 0.1
    assert torch.equal(codec.encode(x.double(), 12.0), codec.encode(x, 12.0))
