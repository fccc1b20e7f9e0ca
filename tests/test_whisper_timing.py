"""Word timestamps (`mmfm.whisper.timing`) against openai-whisper's `whisper.timing` with the same checkpoint."""
import os

import numpy as np
import pytest
import torch
import whisper
import whisper.timing as wt
from whisper.model import ModelDimensions as OpenAIDims, Whisper as OpenAIWhisper

import mmfm.whisper as mw
from mmfm.audio import HOP_LENGTH, N_FRAMES, load_audio, log_mel_spectrogram, pad_or_trim
from mmfm.errors import ConfigError, ShapeError
from mmfm.whisper.timing import WordTiming, dtw, find_alignment, median_filter, merge_punctuations

SPEECH = os.path.join(os.path.dirname(__file__), "..", "media", "speech_en.wav")
DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
            n_vocab=51865, n_text_ctx=64, n_text_state=64, n_text_head=2, n_text_layer=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    "The same seeded random openai-format checkpoint loaded by mmfm and by openai-whisper (every tensor initialised)."
    g = torch.Generator().manual_seed(1)
    sd = {k: (v.clone() if k == "encoder.positional_embedding" else torch.randn(v.shape, generator=g) * 0.2)
          for k, v in OpenAIWhisper(OpenAIDims(**DIMS)).state_dict().items()}
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    torch.save({"dims": DIMS, "model_state_dict": sd}, path)
    return mw.load_model(path, device="cpu"), whisper.load_model(path, device="cpu")


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (5, 5), (13, 80), (40, 23)])
def test_dtw_matches_openai(shape):
    c = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    ours = np.stack(dtw(c))
    assert ours.tolist() == wt.dtw_cpu(c.astype(np.float64)).tolist()
    rows, cols = ours
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, shape[0] - 1, shape[1] - 1)
    assert set(np.diff(rows)) <= {0, 1} and set(np.diff(cols)) <= {0, 1}  # monotonic, connected


def test_dtw_ties_and_plateaus_match_openai():
    for c in [np.zeros((4, 6)), np.ones((6, 4)), np.kron(np.eye(3), np.ones((2, 3))) * -1.0]:
        assert np.stack(dtw(c)).tolist() == wt.dtw_cpu(c.astype(np.float64)).tolist()


@pytest.mark.parametrize("width", [1, 3, 7])
@pytest.mark.parametrize("shape", [(50,), (3, 20), (2, 4, 30), (2, 4, 3)])
def test_median_filter_matches_openai(width, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(width))
    torch.testing.assert_close(median_filter(x, width), wt.median_filter(x, width), rtol=0, atol=0)


def test_bad_arguments():
    with pytest.raises(ConfigError): median_filter(torch.zeros(10), 4)
    with pytest.raises(ConfigError): median_filter(torch.zeros(10), 0)
    with pytest.raises(ShapeError): dtw(np.zeros((0, 5)))
    with pytest.raises(ShapeError): dtw(np.zeros(5))


def test_merge_punctuations_matches_openai():
    tok = mw.get_tokenizer(True, language="en", task="transcribe")
    text = ' "Well," she said (quietly), ¿qué? «No». Done!'
    words, tokens = tok.split_to_word_tokens(tok.encode(text))
    ours = [WordTiming(w, list(t), i, i + 1, 0.5) for i, (w, t) in enumerate(zip(words, tokens))]
    theirs = [wt.WordTiming(w, list(t), i, i + 1, 0.5) for i, (w, t) in enumerate(zip(words, tokens))]
    merge_punctuations(ours, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    wt.merge_punctuations(theirs, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [(w.word, w.tokens) for w in ours] == [(w.word, w.tokens) for w in theirs]
    assert "".join(w.word for w in ours) == text


def test_find_alignment_matches_openai(models):
    ours, theirs = models
    audio = load_audio(SPEECH)
    mel = pad_or_trim(log_mel_spectrogram(audio), N_FRAMES)
    tok = mw.get_tokenizer(True, language="en", task="transcribe")
    otok = whisper.tokenizer.get_tokenizer(True, language="en", task="transcribe")
    text = open(SPEECH.replace(".wav", ".txt")).read().strip()
    text_tokens = tok.encode(" " + text)
    a = find_alignment(ours, tok, text_tokens, mel, len(audio) // HOP_LENGTH)
    b = wt.find_alignment(theirs, otok, text_tokens, mel, len(audio) // HOP_LENGTH)
    assert [w.word for w in a] == [w.word for w in b] and len(a) > 3
    assert [w.tokens for w in a] == [w.tokens for w in b]
    for x, y in zip(a, b):
        assert abs(x.start - y.start) <= 0.02 and abs(x.end - y.end) <= 0.02
        assert x.probability == pytest.approx(y.probability, rel=1e-3)
    assert find_alignment(ours, tok, [], mel, 100) == []
