"""mmfm.audiolm: k-means, token flattening (and Bark's layout), causal masking, the KV cache, the fine model,
training, the pipeline end to end, and clear errors for bad input. Tiny random models; about a minute on a CPU."""
import pytest
import torch
from einops import rearrange
from mmfm.audiolm import (AudioLMPipeline, CoarseLM, FineModel, GPT, GPTConfig, KVCache, SamplingOptions, SemanticLM,
                          SemanticTokenizer, StageConfig, ToneRule, check_codes, codec_tokens, deduplicate, flatten_codes,
                          frame_labels, hierarchy, kmeans, kmeans_plusplus, split_coarse_fine, train_steps, unflatten_codes)
from mmfm.errors import AudioError, ConfigError, MMFMError, ShapeError

torch.set_num_threads(1)  # tiny models: threads cost more than they save


def tiny_hubert():
    from transformers import HubertConfig, HubertModel
    torch.manual_seed(0)
    return HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)).eval()


def tiny_codec(wav):
    "The tiny mmfm codec with a 320-sample hop (50 Hz) and 4 codebooks of 64, codebooks k-means-initialised on `wav`."
    from mmfm.codec import CODEC_CONFIGS, Codec, CodecConfig
    torch.manual_seed(0)
    codec = Codec(CodecConfig(**{**CODEC_CONFIGS["tiny"], "ratios": (8, 5, 8), "target_bandwidths": (0.6, 1.2)}))
    codec.train()
    with torch.no_grad(): codec(wav[:, None], n_q=4)
    return codec.eval()


# ---------------------------------------------------------------- k-means
@pytest.mark.parametrize("k,dim", [(3, 2), (5, 8)])
def test_kmeans_separable_clusters(k, dim):
    g = torch.Generator().manual_seed(k)
    centres = 20 * torch.randn(k, dim, generator=g)
    truth = torch.arange(k).repeat_interleave(60)
    x = centres[truth] + 0.3 * torch.randn(len(truth), dim, generator=g)
    res = kmeans(x, k, seed=1)
    match = torch.cdist(centres, res.centroids).argmin(1)           # our id of every true cluster
    assert sorted(match.tolist()) == list(range(k))                 # a bijection
    assert torch.equal(match[truth], res.labels)
    torch.testing.assert_close(res.centroids[match], centres, atol=0.2, rtol=0)
    # same inertia as scikit-learn's KMeans on the same data (both find the global optimum here)
    from sklearn.cluster import KMeans
    sk = KMeans(k, n_init=3, random_state=0).fit(x.double().numpy())
    assert res.inertia == pytest.approx(sk.inertia_, rel=1e-3)


def test_kmeans_plusplus_picks_data_points_far_apart():
    x = torch.tensor([[0., 0.], [0.1, 0.], [100., 0.], [100.1, 0.]])
    c = kmeans_plusplus(x, 2, torch.Generator().manual_seed(0))
    assert all((x == ci).all(1).any() for ci in c)                   # centroids are data points
    assert (c[0] - c[1]).norm() > 50                                 # the second is drawn ~ D(x)^2: far side


def test_kmeans_errors():
    with pytest.raises(ShapeError, match=r"\[N, D\]"): kmeans(torch.zeros(5), 2)
    with pytest.raises(ConfigError, match="k=6"): kmeans(torch.zeros(5, 2), 6)


# ---------------------------------------------------------------- semantic tokens
def test_semantic_tokenizer_rate_and_dedup():
    tok = SemanticTokenizer(tiny_hubert(), layer=2)
    assert tok.token_rate == 50 and tok.min_samples == 400
    wav, _ = ToneRule().sample(4, 1.0, torch.Generator().manual_seed(0))
    tok.fit(wav, 16_000, 8)
    ids = tok(wav, 16_000)
    assert ids.shape == (4, 49) and ids.dtype == torch.long and 0 <= ids.min() and ids.max() < 8
    runs = tok(wav, 16_000, dedup=True)
    assert len(runs) == 4 and all(torch.equal(r, torch.unique_consecutive(i)) for r, i in zip(runs, ids))
    u, n = deduplicate(torch.tensor([1, 1, 2, 1]))
    assert u.tolist() == [1, 2, 1] and n.tolist() == [2, 1, 1]


def test_semantic_tokenizer_bad_audio():
    tok = SemanticTokenizer(tiny_hubert(), layer=1)
    with pytest.raises(AudioError, match="16000 Hz"): tok.features(torch.zeros(48_000), 48_000)
    with pytest.raises(AudioError, match="empty"): tok.features(torch.zeros(1, 0), 16_000)
    with pytest.raises(AudioError, match="shorter"): tok.features(torch.zeros(399), 16_000)
    with pytest.raises(AudioError, match="float"): tok.features(torch.zeros(1000, dtype=torch.int16), 16_000)
    with pytest.raises(AudioError, match="NaN"): tok.features(torch.full((1000,), float("inf")), 16_000)
    with pytest.raises(AudioError, match="mono"): tok.features(torch.zeros(2, 2, 1000), 16_000)
    with pytest.raises(ConfigError, match="fit"): tok(torch.zeros(1000), 16_000)
    with pytest.raises(ConfigError, match="layer=3"): SemanticTokenizer(tiny_hubert(), layer=3)


# ---------------------------------------------------------------- flattening
@pytest.mark.parametrize("B,K,S,C,offset", [(1, 1, 5, 2, 0), (2, 2, 7, 1024, 10_000), (3, 8, 4, 64, 17)])
def test_flatten_round_trip(B, K, S, C, offset):
    codes = torch.randint(C, (B, K, S), generator=torch.Generator().manual_seed(K))
    flat = flatten_codes(codes, C, offset)
    assert flat.shape == (B, S * K)
    assert torch.equal(flat[:, 1::K] if K > 1 else flat, (codes[:, 1] if K > 1 else codes[:, 0]) + offset + (C if K > 1 else 0))
    assert torch.equal(unflatten_codes(flat, K, C, offset), codes)
    ids = flat.reshape(B, S, K) - offset                             # codebook k occupies [kC, (k+1)C)
    assert torch.equal(ids // C, torch.arange(K).expand(B, S, K))


def test_flatten_errors():
    with pytest.raises(ShapeError, match="0..3"): flatten_codes(torch.tensor([[[0, 4]]]), 4)
    with pytest.raises(ShapeError, match="0..3"): flatten_codes(torch.tensor([[[-1]]]), 4)
    with pytest.raises(ShapeError, match="integer"): flatten_codes(torch.zeros(1, 1, 2), 4)
    with pytest.raises(ShapeError, match=r"\[B, K, S\]"): flatten_codes(torch.zeros(2, 3, dtype=torch.long), 4)
    with pytest.raises(ShapeError, match="frame 1, codebook 0"): unflatten_codes(torch.tensor([[0, 4, 5, 5]]), 2, 4)
    with pytest.raises(ShapeError, match="multiple"): unflatten_codes(torch.tensor([[0, 4, 1]]), 2, 4)
    with pytest.raises(ShapeError, match="expected 2 codebooks"): check_codes(torch.zeros(1, 3, 4, dtype=torch.long), 4, 2)
    with pytest.raises(ConfigError, match="n_coarse=3"): split_coarse_fine(torch.zeros(1, 2, 4, dtype=torch.long), 3)
    assert all(issubclass(e, (ValueError, MMFMError)) for e in (ShapeError, ConfigError))


def test_flatten_matches_transformers_bark_coarse_layout():
    from transformers import BarkCoarseConfig, BarkCoarseModel
    from transformers.models.bark.generation_configuration_bark import BarkSemanticGenerationConfig
    Vs, C, Kc = 50, 32, 2
    model = BarkCoarseModel(BarkCoarseConfig(block_size=64, input_vocab_size=Vs + Kc * C + 4, output_vocab_size=Vs + Kc * C + 4,
                                             num_layers=1, num_heads=2, hidden_size=16))
    g = torch.Generator().manual_seed(0)
    coarse = torch.randint(C, (Kc, 41), generator=g)
    _, stream = model.preprocess_histories(max_coarse_history=630, semantic_to_coarse_ratio=75 / 49.9 * Kc, batch_size=2,
                                           semantic_generation_config=BarkSemanticGenerationConfig(semantic_vocab_size=Vs),
                                           codebook_size=C, history_prompt=dict(semantic_prompt=torch.randint(Vs, (25,), generator=g),
                                                                                coarse_prompt=coarse))
    ours = flatten_codes(coarse[None].expand(2, -1, -1), C, offset=Vs)
    n = stream.shape[1] + 2                                          # Bark keeps the last n and drops 2 for alignment
    assert torch.equal(stream.long(), ours[:, -n:][:, :-2])
    assert torch.equal(unflatten_codes(ours, Kc, C, Vs)[0], coarse)


# ---------------------------------------------------------------- transformer
def test_causal_mask_future_does_not_change_past():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=13, block_size=40, n_layer=2, n_head=2, n_embd=16)).eval()
    x = torch.randint(13, (3, 20))
    for t in (1, 7, 19):
        y = x.clone(); y[:, t:] = torch.randint(13, y[:, t:].shape)
        with torch.no_grad(): a, b = gpt(x), gpt(y)
        torch.testing.assert_close(a[:, :t], b[:, :t], atol=1e-6, rtol=0)


def test_non_causal_config_sees_the_future():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=13, block_size=40, n_head=2, n_embd=16, causal=False)).eval()
    x = torch.randint(13, (1, 10)); y = x.clone(); y[0, 9] = (y[0, 9] + 1) % 13
    with torch.no_grad(): assert (gpt(x)[:, 0] - gpt(y)[:, 0]).abs().max() > 1e-4


def test_kv_cache_equals_full_forward_and_generation():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=17, block_size=64, n_layer=3, n_head=4, n_embd=32)).eval()
    x = torch.randint(17, (2, 30))
    cache = KVCache()
    with torch.no_grad():
        parts = [gpt(x[:, :11], cache)] + [gpt(x[:, i:i + 1], cache) for i in range(11, 30)]
        full = gpt(x)
    assert cache.length == 30
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    greedy = SamplingOptions(temperature=0)
    assert torch.equal(gpt.generate(x[:, :5], 25, greedy), gpt.generate(x[:, :5], 25, greedy, use_cache=False))
    sampled = [gpt.generate(x[:, :5], 25, SamplingOptions(0.9, top_k=5), generator=torch.Generator().manual_seed(3),
                            use_cache=c) for c in (True, False)]
    assert torch.equal(*sampled)


def test_gpt_errors():
    gpt = GPT(GPTConfig(vocab_size=5, block_size=8, n_head=2, n_embd=8))
    with pytest.raises(ConfigError, match="block_size"): gpt(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ConfigError, match="block_size"): gpt.generate(torch.zeros(1, 4, dtype=torch.long), 5)
    with pytest.raises(ShapeError, match="0..4"): gpt(torch.tensor([[5]]))
    with pytest.raises(ShapeError, match="T0 >= 1"): gpt.generate(torch.zeros(1, 0, dtype=torch.long), 2)
    with pytest.raises(ConfigError, match="divisible"): GPTConfig(n_embd=10, n_head=4)


# ---------------------------------------------------------------- stages
def test_coarse_lm_layout_and_constrained_generation():
    torch.manual_seed(0)
    clm = CoarseLM(semantic_vocab=7, codebook_size=5, n_coarse=3, size=StageConfig(block_size=64, n_head=2, n_embd=16)).eval()
    assert (clm.offset, clm.infer_token, clm.gpt.config.vocab_size) == (7, 22, 23)
    sem = torch.randint(7, (2, 6))
    out = clm.generate(sem, 9, torch.randint(5, (2, 3, 2)), SamplingOptions(2.0))   # hot sampling: ranges must still hold
    assert out.shape == (2, 3, 11) and out.min() >= 0 and out.max() < 5
    with pytest.raises(ShapeError, match="expected 3 codebooks"): clm.generate(sem, 2, torch.zeros(2, 2, 1, dtype=torch.long))
    with pytest.raises(ShapeError, match="0..6"): clm.loss(sem + 7, torch.zeros(2, 3, 2, dtype=torch.long))


def test_fine_model_ignores_target_and_later_codebooks_and_fills_every_frame():
    torch.manual_seed(0)
    fm = FineModel(codebook_size=6, n_coarse=1, n_codebooks=4, size=StageConfig(block_size=8, n_head=2, n_embd=16)).eval()
    c = torch.randint(6, (2, 4, 8))
    with torch.no_grad():
        for k in (1, 2, 3):
            d = c.clone(); d[:, k:] = torch.randint(6, d[:, k:].shape)
            torch.testing.assert_close(fm(c, k), fm(d, k), atol=1e-6, rtol=0)
    coarse = torch.randint(6, (2, 1, 29))                            # 29 frames: four overlapping windows of 8
    for hist in (0, 3, 7):
        out = fm.generate(coarse, history=hist)
        assert out.shape == (2, 4, 29) and torch.equal(out[:, :1], coarse) and out[:, 1:].max() < 6
    with pytest.raises(ConfigError, match="history=8"): fm.generate(coarse, history=8)
    with pytest.raises(ConfigError, match="n_coarse"): FineModel(6, 4, 4)


def test_short_training_reduces_loss():
    g = torch.Generator().manual_seed(0)
    start = torch.randint(8, (64, 1), generator=g)
    seqs = (start + torch.arange(24) // 3) % 8                     # a rule: each id 3 times, then the next
    torch.manual_seed(0)
    lm = SemanticLM(8, StageConfig(block_size=32, n_head=2, n_embd=32))
    losses = train_steps(lm, lambda i: lm.loss(seqs[i]), len(seqs), 60, batch_size=16)
    assert sum(losses[-5:]) / 5 < 0.4 * losses[0]
    out = lm.generate(seqs[:8, :12], 12, SamplingOptions(temperature=0))
    assert (out[:, 12:] == seqs[:8, 12:]).float().mean() > 0.8     # it continues the rule
    fm = FineModel(8, 1, 2, StageConfig(block_size=24, n_head=2, n_embd=32))
    codes = torch.stack([seqs, (seqs * 3) % 8], 1)                  # codebook 1 is a function of codebook 0
    fl = train_steps(fm, lambda i: fm.loss(codes[i]), len(codes), 40, batch_size=16)
    assert sum(fl[-5:]) / 5 < 0.3 * fl[0]
    assert torch.equal(fm.generate(codes[:4, :1]), codes[:4])


# ---------------------------------------------------------------- pipeline
def test_pipeline_end_to_end_and_errors():
    rule = ToneRule()
    wav, degree = rule.sample(16, 1.0, torch.Generator().manual_seed(0))
    tok = SemanticTokenizer(tiny_hubert(), layer=2).fit(wav, 16_000, 8)
    codec = tiny_codec(wav)
    size = StageConfig(block_size=160, n_head=2, n_embd=16)
    torch.manual_seed(0)
    pipe = AudioLMPipeline(tok, SemanticLM(8, size), CoarseLM(8, 64, 2, size), FineModel(64, 2, 4, size), codec, bandwidth=1.2)
    out = pipe(wav[:2, :8000], 16_000, 0.4, generator=torch.Generator().manual_seed(0))
    assert out.semantic.shape == (2, 24 + 20) and out.n_prompt_semantic == 24
    assert out.codes.shape == (2, 4, 45) and out.n_prompt_frames == 25 and torch.equal(out.codes[:, :2], out.coarse)
    assert torch.equal(out.codes[:, :2, :25], codec_tokens(codec, wav[:2, :8000], 16_000, 1.2)[:, :2])
    assert out.wav.shape == (2, 45 * 320) and torch.isfinite(out.wav).all() and out.sample_rate == 16_000
    assert frame_labels(degree, 320, 50).shape == (16, 50)
    with pytest.raises(AudioError, match="16000 Hz"): pipe(torch.zeros(8000), 8000, 0.4)
    with pytest.raises(AudioError, match="empty"): pipe(torch.zeros(0), 16_000, 0.4)
    with pytest.raises(ConfigError, match="seconds"): pipe(wav[0, :8000], 16_000, 0)
    with pytest.raises(ConfigError, match="block_size"): pipe(wav[0], 16_000, 3.0)
    wrong_k = AudioLMPipeline(tok, pipe.semantic_lm, pipe.coarse_lm, pipe.fine_model, codec, bandwidth=0.6)  # 2 codebooks
    with pytest.raises(ShapeError, match="expected 4 codebooks"): wrong_k(wav[0, :8000], 16_000, 0.4)
    with pytest.raises(ConfigError, match="semantic vocabularies"):
        AudioLMPipeline(tok, SemanticLM(9, size), pipe.coarse_lm, pipe.fine_model, codec)
    with pytest.raises(ConfigError, match="disagree"):
        AudioLMPipeline(tok, pipe.semantic_lm, pipe.coarse_lm, FineModel(64, 1, 4, size), codec)


def test_hierarchy_real_numbers():
    bark = hierarchy(49.9, 10_000, 75, 2, 8, 1024)
    assert [lv.tokens_per_second for lv in bark] == pytest.approx([49.9, 150, 450])
    enc = hierarchy(50, 500, 75, 2, 8, 1024)
    assert sum(lv.bits_per_second for lv in enc[1:]) == pytest.approx(6000)   # EnCodec 24 kHz at 6 kbit/s


def test_tone_rule():
    wav, deg = ToneRule().sample(8, 0.6, torch.Generator().manual_seed(2))
    change = deg[:, 1:] != deg[:, :-1]
    assert (((deg[:, 1:] - deg[:, :-1]) % 8)[change] == 1).all()
    assert wav.abs().max() <= 0.5 + 1e-6
    with pytest.raises(ConfigError, match="multiple"): ToneRule(note_seconds=0.03)
