"""Long-form transcription (`mmfm.whisper.transcribe`) against openai-whisper with the same random checkpoint.

The checkpoint has tiny dimensions (width 64, 2+2 layers) and a short text context (n_text_ctx=64, so each window
decodes at most 32 tokens) to keep the suite fast on 2 CPU cores; every tensor, including the decoder's positional
embedding, is initialised from a seeded generator. Random weights produce improbable, repetitive text, which drives
the temperature fallback and compression-ratio checks of the real transcribe loop.
"""
import os, resource, subprocess, sys, textwrap

import numpy as np
import pytest
import torch
import whisper
import whisper.audio
from whisper.model import ModelDimensions as OpenAIDims, Whisper as OpenAIWhisper

import mmfm.audio
import mmfm.whisper as mw
from mmfm.audio import N_FRAMES, N_SAMPLES, SAMPLE_RATE, load_audio, log_mel_spectrogram
from mmfm.errors import AudioError
from mmfm.whisper import transcribe as transcribe_mod
from mmfm.whisper.transcribe import LogMelStream

SPEECH = os.path.join(os.path.dirname(__file__), "..", "media", "speech_en.wav")
DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
            n_vocab=51865, n_text_ctx=64, n_text_state=64, n_text_head=2, n_text_layer=2)
AVG_LOGPROB_ATOL = 1e-4  # float32 summation order differs between the two implementations
NO_SPEECH_RTOL = 1e-3


def random_state_dict(seed=0):
    "Every tensor of an openai-format Whisper state dict, drawn from a seeded generator (sinusoids kept)."
    g = torch.Generator().manual_seed(seed)
    sd = OpenAIWhisper(OpenAIDims(**DIMS)).state_dict()
    out = {}
    for k, v in sd.items():
        if k == "encoder.positional_embedding": out[k] = v.clone()  # fixed sinusoids (a buffer in the checkpoint)
        elif k.endswith("ln.weight") or k.endswith("ln_post.weight"): out[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        else: out[k] = torch.randn(v.shape, generator=g) * (0.1 if v.ndim > 1 else 0.02)
    return out


def save_checkpoint(path, sd):
    torch.save({"dims": DIMS, "model_state_dict": sd}, path)
    return str(path)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", random_state_dict())


@pytest.fixture(scope="module")
def models(ckpt):
    return mw.load_model(ckpt, device="cpu"), whisper.load_model(ckpt, device="cpu")


@pytest.fixture(scope="module")
def speech():
    return load_audio(SPEECH)


@pytest.fixture(autouse=True)
def _no_ffmpeg(monkeypatch):
    "openai-whisper decodes files with the ffmpeg program; use mmfm's PyAV reader for its file inputs instead."
    monkeypatch.setattr(whisper.audio, "load_audio", mmfm.audio.load_audio)


def run_both(models, audio, **kw):
    ours, theirs = models
    torch.manual_seed(0)
    a = mw.transcribe(ours, audio, **kw)
    torch.manual_seed(0)
    b = whisper.transcribe(theirs, audio, **kw)
    return a, b


def assert_same_result(a, b, words=False):
    assert a["text"] == b["text"] and a["language"] == b["language"]
    assert len(a["segments"]) == len(b["segments"])
    for s, t in zip(a["segments"], b["segments"]):
        assert set(s) == set(t)
        for k in ["id", "seek", "start", "end", "text", "tokens", "temperature", "compression_ratio"]:
            assert s[k] == t[k], (k, s[k], t[k])
        assert s["avg_logprob"] == pytest.approx(t["avg_logprob"], abs=AVG_LOGPROB_ATOL)
        assert s["no_speech_prob"] == pytest.approx(t["no_speech_prob"], rel=NO_SPEECH_RTOL)
        if words:
            assert [w["word"] for w in s["words"]] == [w["word"] for w in t["words"]]
            for w, v in zip(s["words"], t["words"]):
                assert abs(w["start"] - v["start"]) <= 0.02 and abs(w["end"] - v["end"]) <= 0.02
                assert w["probability"] == pytest.approx(v["probability"], rel=1e-3)


def test_long_form_matches_openai_whisper_with_fallback(models, speech):
    audio = np.concatenate([speech, np.zeros(3 * SAMPLE_RATE, np.float32)] * 8)  # 71 s: three or more windows
    assert len(audio) / SAMPLE_RATE > 60
    ours, theirs = run_both(models, audio, language="en", fp16=False)
    assert_same_result(ours, theirs)
    assert len({s["seek"] for s in ours["segments"]}) >= 3
    assert all(s["temperature"] > 0 for s in ours["segments"])  # every window fell back
    # the greedy decode alone is a repetition loop that the compression ratio catches
    greedy, _ = run_both(models, audio[: 30 * SAMPLE_RATE], language="en", fp16=False, temperature=0.0)
    assert max(s["compression_ratio"] for s in greedy["segments"]) > 2.4


def test_word_timestamps_match_openai_whisper(models, speech):
    audio = np.concatenate([speech, np.zeros(2 * SAMPLE_RATE, np.float32), speech])
    ours, theirs = run_both(models, audio, language="en", fp16=False, word_timestamps=True, temperature=(0.0, 1.0))
    assert_same_result(ours, theirs, words=True)
    assert sum(len(s["words"]) for s in ours["segments"]) > 0


@pytest.mark.parametrize("seconds,options", [
    (13, dict(initial_prompt="Hello world.", condition_on_previous_text=False, clip_timestamps="1,9.5,11")),
    (13, dict(initial_prompt="Names: Ada, Alan.", carry_initial_prompt=True, clip_timestamps=[0.5, 7])),
    (4, dict(word_timestamps=True, hallucination_silence_threshold=0.5, temperature=0.0)),
    (6, dict(task="translate", language=None, best_of=2)),  # language detection on the multilingual vocabulary
])
def test_options_match_openai_whisper(models, speech, seconds, options):
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE, np.float32), speech])[: seconds * SAMPLE_RATE]
    kw = dict(language="en", fp16=False, temperature=(0.0, 1.0))
    kw.update(options)
    ours, theirs = run_both(models, audio, **kw)
    assert_same_result(ours, theirs, words=options.get("word_timestamps", False))


def test_model_method_and_path_input(models):
    ours, theirs = models
    torch.manual_seed(0)
    a = ours.transcribe(SPEECH, language="en", fp16=False, temperature=0.0)
    torch.manual_seed(0)
    b = whisper.transcribe(theirs, SPEECH, language="en", fp16=False, temperature=0.0)
    assert_same_result(a, b)


def silence_detector_state_dict(seed=0):
    """A model whose every prediction is dominated by <|nospeech|> (then <|endoftext|>): the final layer norm
    outputs a fixed vector v and those two embeddings point along v. It stands in for a trained model on silence,
    which a random model cannot imitate (its no-speech probability is ~1e-6 whatever the input)."""
    sd = random_state_dict(seed)
    tok = mw.get_tokenizer(True, num_languages=99)
    v = torch.randn(DIMS["n_text_state"], generator=torch.Generator().manual_seed(seed + 1))
    sd["decoder.ln.weight"] = torch.zeros_like(sd["decoder.ln.weight"])
    sd["decoder.ln.bias"] = v
    E = sd["decoder.token_embedding.weight"] * 0.01
    E[tok.no_speech], E[tok.eot] = 3 * v / v.norm(), 2 * v / v.norm()
    sd["decoder.token_embedding.weight"] = E
    return sd


def test_silence_and_noise_give_no_text(tmp_path, models):
    path = save_checkpoint(tmp_path / "silent.pt", silence_detector_state_dict())
    quiet = (mw.load_model(path, device="cpu"), whisper.load_model(path, device="cpu"))
    silence = np.zeros(10 * SAMPLE_RATE, np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(20 * SAMPLE_RATE)).astype(np.float32)
    for audio in (silence, noise):
        ours, theirs = run_both(quiet, audio, language="en", fp16=False)
        assert ours == theirs == {"text": "", "segments": [], "language": "en"}
        # the gate, not the model alone, removed them: without it every window is kept
        ours, theirs = run_both(quiet, audio, language="en", fp16=False, no_speech_threshold=None, temperature=(0.0, 1.0))
        assert_same_result(ours, theirs)
        assert len(ours["segments"]) >= len(audio) // N_SAMPLES and all(s["no_speech_prob"] > 0.99 for s in ours["segments"])
    # honest baseline: the random model is never confident about silence, so it does invent text there
    ours, theirs = run_both(models, silence, language="en", fp16=False, temperature=0.0)
    assert_same_result(ours, theirs)
    assert ours["text"].strip() != "" and max(s["no_speech_prob"] for s in ours["segments"]) < 1e-3


def test_empty_audio_gives_empty_result(models):
    for audio in (np.zeros(0, np.float32), torch.zeros(0)):
        ours, theirs = run_both(models, audio, language="en", fp16=False)
        assert ours == theirs == {"text": "", "segments": [], "language": "en"}


def test_bad_audio_raises_audio_error(tmp_path, models):
    ours, _ = models
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    for audio in [str(bad), str(tmp_path / "missing.wav"), np.zeros(100, np.int16), np.zeros((3, 2, 100), np.float32),
                  np.array([0.0, np.nan], np.float32)]:
        with pytest.raises(AudioError):
            mw.transcribe(ours, audio, language="en", fp16=False)


@pytest.mark.parametrize("n", [1, 159, 160, 401, 3 * SAMPLE_RATE + 7, 31 * SAMPLE_RATE + 33])
def test_log_mel_stream_equals_full_spectrogram(n):
    x = torch.from_numpy((0.3 * np.random.default_rng(n).standard_normal(n)).astype(np.float32))
    full = log_mel_spectrogram(x, 80, padding=N_SAMPLES)
    ref = whisper.log_mel_spectrogram(x, 80, padding=N_SAMPLES)
    stream = LogMelStream(x, 80, chunk_frames=1000)
    assert stream.n_frames == full.shape[-1] == ref.shape[-1]
    for a in sorted({0, max(0, n // 160 - 5), n // 320, full.shape[-1] - N_FRAMES}):
        torch.testing.assert_close(stream[a : a + N_FRAMES], full[:, a : a + N_FRAMES], atol=1e-5, rtol=0)
        torch.testing.assert_close(stream[a : a + N_FRAMES], ref[:, a : a + N_FRAMES], atol=1e-4, rtol=0)


PEAK_RSS = """
import sys, numpy as np, torch
def hwm():  # this process's peak resident memory in MB (VmHWM starts afresh at exec, unlike ru_maxrss)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
torch.set_num_threads(1)
audio = torch.randn({n}, generator=torch.Generator().manual_seed(0)).mul_(0.1)  # float32, no temporaries
before = hwm()
if {stream}:
    from mmfm.whisper.transcribe import LogMelStream
    from mmfm.audio import N_FRAMES
    s = LogMelStream(audio, 80)
    for a in range(0, s.n_frames - N_FRAMES, N_FRAMES): s[a : a + N_FRAMES]
else:
    import whisper
    whisper.log_mel_spectrogram(audio, 80, padding=480000)
print(hwm() - before)
"""


def test_memory_is_bounded_for_long_audio():
    "Peak memory growth (MB) over holding the waveform: windowed spectrograms do not grow with the length of the file."
    def grow(minutes, stream):
        code = PEAK_RSS.format(n=minutes * 60 * SAMPLE_RATE, stream=stream)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        return float(out.stdout.strip().splitlines()[-1])
    short, long, full = grow(5, True), grow(20, True), grow(20, False)
    # a few 30 s windows of STFT whatever the length (allocator noise aside: ru_maxrss is a high-water mark)
    assert short < 100 and long < 100, (short, long)
    assert full > 300 and full > 4 * long, (full, long)  # openai-whisper's spectrogram of the whole file


def test_long_input_only_ever_makes_one_window(monkeypatch, tmp_path):
    "Five minutes through the silence model: ten windows, and no spectrogram call wider than one window."
    path = save_checkpoint(tmp_path / "silent.pt", silence_detector_state_dict())
    quiet = mw.load_model(path, device="cpu")
    widths = []
    original = LogMelStream.log10_mel
    def spy(self, start, stop):
        widths.append(stop - start)
        return original(self, start, stop)
    monkeypatch.setattr(LogMelStream, "log10_mel", spy)
    noise = (0.05 * np.random.default_rng(1).standard_normal(300 * SAMPLE_RATE)).astype(np.float32)
    result = mw.transcribe(quiet, noise, language="en", fp16=False)
    assert result["segments"] == []
    assert max(widths) <= N_FRAMES and len(widths) >= 2 * 10
