"""mmfm.audio: decoding of every common container, parity of the log-Mel spectrogram with openai-whisper and
transformers, and bad input."""
from pathlib import Path
import numpy as np
import pytest
import torch

from mmfm.audio import (N_SAMPLES, SAMPLE_RATE, load_audio, log_mel_spectrogram, mel_filters, pad_or_trim,
                        save_audio, play)
from mmfm.errors import AudioError

MEDIA = Path(__file__).resolve().parents[1] / "media"
TOL = 1e-4  # max abs difference allowed against the reference implementations


@pytest.fixture(scope="module")
def speech():
    return load_audio(MEDIA / "speech_en.wav")


def signals(speech):
    rng = np.random.default_rng(0)
    return {"speech": speech, "noise": (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32),
            "silence": np.zeros(2 * SAMPLE_RATE, np.float32),
            "long": np.tile(speech, 7)[: 40 * SAMPLE_RATE]}  # longer than 30 s: trimmed


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("kind", ["speech", "noise", "silence", "long"])
def test_parity_with_whisper_and_transformers(speech, kind, n_mels):
    import whisper
    from transformers import WhisperFeatureExtractor
    x = signals(speech)[kind]
    ours = log_mel_spectrogram(pad_or_trim(x), n_mels)
    ref = whisper.log_mel_spectrogram(torch.from_numpy(pad_or_trim(x)), n_mels)
    hf = WhisperFeatureExtractor(feature_size=n_mels)(x, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    assert ours.shape == ref.shape == hf.shape == (n_mels, 3000)
    assert (ours - ref).abs().max().item() <= TOL
    assert np.abs(ours.numpy() - hf).max() <= TOL


def test_unpadded_and_padding_argument_match_whisper(speech):
    import whisper
    for pad in (0, 1234):
        ours = log_mel_spectrogram(speech, padding=pad)
        ref = whisper.log_mel_spectrogram(torch.from_numpy(speech), padding=pad)
        assert ours.shape == ref.shape and (ours - ref).abs().max() <= TOL


def test_path_input_and_batch(speech):
    a = log_mel_spectrogram(str(MEDIA / "speech_en.wav"))
    assert torch.equal(a, log_mel_spectrogram(speech))
    batch = torch.stack([torch.from_numpy(pad_or_trim(speech)), torch.zeros(N_SAMPLES)])
    out = log_mel_spectrogram(batch, 128)
    assert out.shape == (2, 128, 3000)
    assert torch.allclose(out[0], log_mel_spectrogram(pad_or_trim(speech), 128), atol=1e-5)
    assert torch.allclose(out[1], torch.full_like(out[1], -1.5))  # digital silence: (log10(1e-10) + 4) / 4


def test_mel_filters_match_librosa():
    import librosa
    for n in (40, 80, 128):
        ref = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=400, n_mels=n)
        assert np.abs(mel_filters(n).numpy() - ref).max() < 1e-6


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"])
def test_containers_roundtrip(tmp_path, speech, suffix):
    f = save_audio(tmp_path / f"x{suffix}", speech)
    back = load_audio(f)
    assert back.dtype == np.float32 and back.ndim == 1 and np.abs(back).max() <= 1.0
    assert abs(len(back) - len(speech)) < 0.1 * SAMPLE_RATE
    n = min(len(back), len(speech)) - 4000
    corr = np.correlate(back[: n + 4000], speech[:n], mode="valid").max() / (
        np.linalg.norm(speech[:n]) * np.linalg.norm(back[: n + 4000]))
    assert corr > 0.9


def test_video_audio_track_and_resampling():
    a = load_audio(MEDIA / "clip.mp4")
    assert 1.9 < len(a) / SAMPLE_RATE < 2.3
    hz = np.argmax(np.abs(np.fft.rfft(a))) * SAMPLE_RATE / len(a)
    assert abs(hz - 440) < 3
    a8 = load_audio(MEDIA / "clip.mp4", sr=8000)
    assert abs(len(a8) - len(a) / 2) < 50


def test_file_object_and_stereo(tmp_path, speech):
    with open(MEDIA / "speech_en.wav", "rb") as f:
        np.testing.assert_allclose(load_audio(f), speech, atol=1e-6)
    np.testing.assert_allclose(load_audio(torch.from_numpy(np.stack([speech, 0 * speech]))), speech / 2, atol=1e-7)


def test_array_resampling_preserves_frequency():
    sr = 44100
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = load_audio(x, orig_sr=sr)
    assert abs(len(y) - SAMPLE_RATE) <= 64
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) * SAMPLE_RATE / len(y) - 1000) < 2


def _bad_files(tmp_path, speech):
    wav = (MEDIA / "speech_en.wav").read_bytes()
    m4a = save_audio(tmp_path / "ok.m4a", speech).read_bytes()
    flac = save_audio(tmp_path / "ok.flac", np.tile(speech, 3)).read_bytes()
    rng = np.random.default_rng(1)
    files = {
        "missing": (tmp_path / "missing.wav", "no such file"),
        "empty": (tmp_path / "empty.mp3", "empty"),
        "text": (tmp_path / "notes.txt", "audio"),
        "random bytes": (tmp_path / "noise.bin", "not a readable"),
        "truncated wav": (tmp_path / "half.wav", "truncated"),
        "truncated m4a": (tmp_path / "half.m4a", "complete?"),
        "truncated flac": (tmp_path / "half.flac", "truncated"),
        "corrupt header": (tmp_path / "corrupt.wav", "not a readable"),
        "image": (tmp_path / "picture.png", "audio"),
        "directory": (tmp_path, "directory"),
    }
    files["empty"][0].write_bytes(b"")
    files["text"][0].write_text("definitely not audio\n" * 100)
    files["random bytes"][0].write_bytes(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    files["truncated wav"][0].write_bytes(wav[: len(wav) // 2])
    files["truncated m4a"][0].write_bytes(m4a[: len(m4a) // 3])
    files["truncated flac"][0].write_bytes(flac[: len(flac) // 3])
    files["corrupt header"][0].write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(rng.integers(0, 256, 4000, dtype=np.uint8)))
    import av
    with av.open(str(files["image"][0]), "w", format="image2") as out:
        st = out.add_stream("png", rate=1); st.width = st.height = 8; st.pix_fmt = "rgb24"
        for p in st.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")): out.mux(p)
        for p in st.encode(None): out.mux(p)
    return files


def test_bad_files_raise_audio_error_naming_the_file(tmp_path, speech):
    for what, (path, needle) in _bad_files(tmp_path, speech).items():
        with pytest.raises(AudioError) as e:
            load_audio(path)
        msg = str(e.value)
        assert str(path) in msg, (what, msg)
        assert needle in msg, (what, msg)
        assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("x,needle", [
    (np.array([0.0, np.nan], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float32), "NaN or infinite"),
    (np.zeros(100, np.int16), "divide int16"),
    (np.zeros(100, bool), "dtype"),
    (np.zeros((2, 3, 4), np.float32), "shape"),
    (np.zeros((1000, 2), np.float32), "transpose"),
    ("not/a/file.wav", "no such file"),
])
def test_bad_arrays(x, needle):
    with pytest.raises(AudioError, match=needle):
        load_audio(x)


@pytest.mark.parametrize("sr", [0, -16000, 16000.5, 10**7, "16000"])
def test_unsupported_sample_rates(speech, sr):
    with pytest.raises(AudioError, match="unsupported"):
        load_audio(speech, sr=sr)
    with pytest.raises(AudioError, match="unsupported"):
        load_audio(speech, orig_sr=sr)


def test_log_mel_rejects_bad_input(speech):
    with pytest.raises(AudioError, match="16000 Hz"): log_mel_spectrogram(speech, sr=22050)
    with pytest.raises(AudioError, match="non-empty"): log_mel_spectrogram(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="NaN"): log_mel_spectrogram(torch.tensor([0.0, float("nan")] * 400))
    with pytest.raises(AudioError, match="dtype"): log_mel_spectrogram(torch.zeros(800, dtype=torch.int32))
    with pytest.raises(AudioError, match="n_mels"): log_mel_spectrogram(speech, n_mels=0)


def test_pad_or_trim_numpy_and_torch():
    x = np.arange(10, dtype=np.float32)
    assert np.array_equal(pad_or_trim(x, 4), x[:4])
    assert np.array_equal(pad_or_trim(x, 12), np.r_[x, 0, 0])
    t = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(pad_or_trim(t, 2, axis=1), t[:, :2])
    assert pad_or_trim(t, 5, axis=0).shape == (5, 3, 4) and pad_or_trim(t, 5, axis=0)[2:].abs().sum() == 0


def test_player_is_small_html(speech):
    p = play(speech)
    html = p._repr_html_()
    assert html.startswith("<audio") and "data:audio/mpeg;base64," in html
    assert len(html) < 60_000  # MP3 keeps notebooks and docs pages light


@pytest.mark.gpu
def test_cuda_matches_cpu(speech):
    a = log_mel_spectrogram(pad_or_trim(speech), 128, device="cuda").cpu()
    assert (a - log_mel_spectrogram(pad_or_trim(speech), 128)).abs().max() <= TOL
