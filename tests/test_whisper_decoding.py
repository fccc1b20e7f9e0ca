"""mmfm.whisper.decoding and .tokenizer against openai-whisper: same random weights, token-identical decoding."""
import numpy as np
import pytest
import torch
import whisper
import whisper.tokenizer as ref_tokenizer

from mmfm.errors import ConfigError, ShapeError
from mmfm.whisper.decoding import DecodingOptions, decode, detect_language
from mmfm.whisper.model import dims_for
from mmfm.whisper.tokenizer import get_tokenizer, LANGUAGES, TO_LANGUAGE_CODE
from whisper_helpers import TINY_DIMS, model_pair, random_mel

SAMPLE_LEN = 16  # enough tokens for timestamps, pairs and repeats; small enough for a CPU


@pytest.fixture(scope="module", params=["tiny-dims", "real-tiny"])
def pair(request, tmp_path_factory):
    # noise scales chosen so that random weights still write varied tokens (see the non-trivial assertion below)
    dims, std, pos_std = (TINY_DIMS, 0.1, 1.0) if request.param == "tiny-dims" else (dims_for("tiny"), 0.05, 2.0)
    ours, ref = model_pair(dims, str(tmp_path_factory.mktemp("ckpt") / "random.pt"), std=std, pos_std=pos_std)
    mel = random_mel(2)
    with torch.no_grad(): feats = ours.embed_audio(mel)  # decode() also accepts encoder output: encode once per model
    return ours, ref, feats


def _same(a, b):
    assert a.tokens == b.tokens, (a.tokens, b.tokens)
    assert a.text == b.text and a.language == b.language
    np.testing.assert_allclose(a.avg_logprob, b.avg_logprob, atol=1e-4)
    np.testing.assert_allclose(a.no_speech_prob, b.no_speech_prob, atol=1e-5)
    np.testing.assert_allclose(a.compression_ratio, b.compression_ratio)


@pytest.mark.parametrize("without_timestamps", [False, True])
def test_greedy_batched_token_identical(pair, without_timestamps):
    ours, ref, feats = pair
    opts = DecodingOptions(language="en", fp16=False, sample_len=SAMPLE_LEN, without_timestamps=without_timestamps)
    a, b = decode(ours, feats, opts), whisper.decode(ref, feats, opts)
    assert len(a) == 2
    for x, y in zip(a, b): _same(x, y)
    assert len(set(a[0].tokens)) > 3 and a[0].tokens != a[1].tokens  # a non-trivial comparison
    if not without_timestamps: assert a[0].tokens[0] >= get_tokenizer(True).timestamp_begin


def test_greedy_with_prompt_prefix_language_detection_and_suppression(pair):
    ours, ref, feats = pair
    opts = DecodingOptions(fp16=False, sample_len=SAMPLE_LEN, prompt="the previous words", prefix="And then",
                           suppress_tokens="-1,220,13", max_initial_timestamp=None, task="translate")
    ref_probs = whisper.detect_language(ref, feats)[1]
    for x, y, p in zip(decode(ours, feats, opts), whisper.decode(ref, feats, opts), ref_probs):
        _same(x, y)
        # openai-whisper leaves language_probs empty outside task="lang_id"; we keep the detected distribution
        assert x.language_probs.keys() == p.keys()
        np.testing.assert_allclose([x.language_probs[c] for c in p], [p[c] for c in p], atol=1e-5)


@pytest.mark.parametrize("without_timestamps", [False, True])
def test_beam_search_token_identical(pair, without_timestamps):
    ours, ref, feats = pair
    opts = DecodingOptions(language="en", fp16=False, sample_len=SAMPLE_LEN, beam_size=5, without_timestamps=without_timestamps)
    batched = decode(ours, feats, opts)  # both segments in one batch of 2 x 5 beams
    for i in range(2):  # openai-whisper's beam search takes one segment at a time
        _same(batched[i], whisper.decode(ref, feats[i], opts))
        _same(decode(ours, feats[i], opts), batched[i])


def test_beam_search_patience_and_length_penalty(pair):
    ours, ref, feats = pair
    opts = DecodingOptions(language="en", fp16=False, sample_len=SAMPLE_LEN, beam_size=3, patience=2.0, length_penalty=0.6)
    _same(decode(ours, feats[0], opts), whisper.decode(ref, feats[0], opts))


def test_detect_language_and_lang_id_task(pair):
    ours, ref, feats = pair
    (ta, pa), (tb, pb) = detect_language(ours, feats), whisper.detect_language(ref, feats)
    assert ta.tolist() == tb.tolist()
    for x, y in zip(pa, pb):
        assert x.keys() == y.keys()
        np.testing.assert_allclose([x[c] for c in x], [y[c] for c in x], atol=1e-6)
    res = decode(ours, feats[0], DecodingOptions(task="lang_id", fp16=False))
    assert res.language == max(pa[0], key=pa[0].get) and res.tokens == []


def test_mel_input_and_methods_on_the_model(pair):
    ours, ref, feats = pair
    mel = random_mel(1)[0]
    opts = DecodingOptions(language="en", fp16=False, sample_len=4, without_timestamps=True)
    a = ours.decode(mel, opts)
    _same(a, whisper.decode(ref, mel, opts))
    assert a.audio_features.shape == (1500, ours.dims.n_audio_state)
    assert ours.detect_language(mel)[0].item() == whisper.detect_language(ref, mel)[0].item()


def test_sampling_with_best_of_is_seeded():
    from whisper_helpers import random_whisper
    m = random_whisper(TINY_DIMS)
    mel = random_mel(1)[0]
    opts = DecodingOptions(language="en", fp16=False, sample_len=8, temperature=0.7, best_of=3)
    torch.manual_seed(5); a = decode(m, mel, opts)
    torch.manual_seed(5); b = decode(m, mel, opts)
    assert a.tokens == b.tokens and a.temperature == 0.7


def test_bad_input():
    from whisper_helpers import random_whisper
    m = random_whisper(TINY_DIMS)
    with pytest.raises(ShapeError, match="pad_or_trim"): decode(m, torch.randn(80, 100))
    with pytest.raises(ShapeError): decode(m, torch.randn(3000))
    for bad, msg in [(dict(beam_size=2, best_of=2), "can't be given together"), (dict(best_of=2), "not compatible"),
                     (dict(patience=2.0), "requires beam_size"), (dict(length_penalty=2.0), "between 0 and 1"), (dict(task="summarise"), "task")]:
        with pytest.raises(ConfigError, match=msg): decode(m, torch.randn(80, 3000), **bad)
    with pytest.raises(ConfigError, match="Unsupported language"): decode(m, torch.randn(80, 3000), language="klingon")


@pytest.mark.parametrize("multilingual,num_languages,language,task", [(True, 99, "de", "translate"), (False, 99, None, None),
                                                                      (True, 100, "cantonese", "transcribe"), (True, 99, None, None)])
def test_tokenizer_matches_openai(multilingual, num_languages, language, task):
    a = get_tokenizer(multilingual, num_languages=num_languages, language=language, task=task)
    b = ref_tokenizer.get_tokenizer(multilingual, num_languages=num_languages, language=language, task=task)
    for name in ["sot", "eot", "sot_prev", "sot_lm", "no_timestamps", "no_speech", "timestamp_begin", "transcribe", "translate",
                 "sot_sequence", "sot_sequence_including_notimestamps", "non_speech_tokens", "language"]:
        assert getattr(a, name) == getattr(b, name), name
    assert sorted(zip(a.all_language_tokens, a.all_language_codes)) == sorted(zip(b.all_language_tokens, b.all_language_codes))
    if language: assert a.language_token == b.language_token and a.to_language_token("fr") == b.to_language_token("fr")
    text = " Hello, world! It's 3.14 -- naïve café ♪ 東京タワー"
    ids = a.encode(text)
    assert ids == b.encode(text) and a.decode(ids) == text
    with_ts = [a.timestamp_begin] + ids + [a.timestamp_begin + 100, a.eot]
    assert a.decode_with_timestamps(with_ts) == b.decode_with_timestamps(with_ts) and a.decode(with_ts) == b.decode(with_ts)
    assert a.split_to_word_tokens(with_ts) == b.split_to_word_tokens(with_ts)
    assert dict(LANGUAGES) == ref_tokenizer.LANGUAGES and TO_LANGUAGE_CODE == ref_tokenizer.TO_LANGUAGE_CODE


def test_dtypes_on_cpu():
    from whisper_helpers import random_whisper
    m = random_whisper(TINY_DIMS)
    mel = random_mel(1)[0]
    # fp16=True only applies on CUDA: on a CPU the model's own dtype is used
    assert decode(m, mel, language="en", sample_len=4).audio_features.dtype == torch.float32
    r = decode(m.to(torch.bfloat16), mel, language="en", sample_len=4, without_timestamps=True)
    assert r.audio_features.dtype == torch.bfloat16 and len(r.tokens) == 4


@pytest.mark.gpu
def test_fp16_on_cuda_close_to_fp32():
    from whisper_helpers import random_whisper
    m = random_whisper(TINY_DIMS).cuda()
    feats32 = m.embed_audio(random_mel(2).cuda())
    feats16 = m.embed_audio(random_mel(2).cuda().half())
    assert feats16.dtype == torch.float16 and (feats16.float() - feats32).abs().max() < 0.05
    r = decode(m, random_mel(2).cuda(), language="en", sample_len=8)
    assert r[0].audio_features.dtype == torch.float16 and len(r) == 2
