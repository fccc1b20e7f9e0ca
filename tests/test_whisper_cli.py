"""Writers and the `transcribe` command (`mmfm.whisper.cli`, `mmfm.cli`) against openai-whisper's `whisper` command."""
import io, json, os, shutil, sys

import numpy as np
import pytest
import torch
import whisper
import whisper.audio
import whisper.utils
from whisper.model import ModelDimensions as OpenAIDims, Whisper as OpenAIWhisper

import mmfm.audio
import mmfm.cli
from mmfm.errors import ConfigError
from mmfm.whisper import checkpoints
from mmfm.whisper.cli import WRITERS, get_writer, main

SPEECH = os.path.join(os.path.dirname(__file__), "..", "media", "speech_en.wav")
DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
            n_vocab=51865, n_text_ctx=64, n_text_state=64, n_text_head=2, n_text_layer=2)
FORMATS = ["txt", "srt", "vtt", "tsv", "json"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    "A seeded random openai-format checkpoint (every tensor initialised, decoder positions included)."
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in OpenAIWhisper(OpenAIDims(**DIMS)).state_dict().items():
        if k == "encoder.positional_embedding": sd[k] = v.clone()
        elif k.endswith("ln.weight") or k.endswith("ln_post.weight"): sd[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        else: sd[k] = torch.randn(v.shape, generator=g) * (0.1 if v.ndim > 1 else 0.02)
    path = str(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    torch.save({"dims": DIMS, "model_state_dict": sd}, path)
    return path


@pytest.fixture(autouse=True)
def _no_ffmpeg(monkeypatch):
    "openai-whisper decodes files with the ffmpeg program, which this machine lacks; give it mmfm's PyAV reader."
    monkeypatch.setattr(whisper.audio, "load_audio", mmfm.audio.load_audio)


def seeded_after_loading(load):
    """Wrap a model loader so the global RNG is re-seeded once the model is built (building draws random numbers,
    a different amount in each implementation); sampling at temperature > 0 then starts from the same state."""
    def wrapped(*args, **kwargs):
        model = load(*args, **kwargs)
        torch.manual_seed(0)
        return model
    return wrapped


def run_openai_cli(monkeypatch, args):
    monkeypatch.setattr(sys, "argv", ["whisper", *args])
    monkeypatch.setattr(whisper, "load_model", seeded_after_loading(whisper.load_model))
    sys.modules["whisper.transcribe"].cli()  # the module; `whisper.transcribe` itself is the function


def run_mmfm_cli(args, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(checkpoints, "load_model", seeded_after_loading(checkpoints.load_model))
    return mmfm.cli.main(["transcribe", *args])


def assert_json_close(a, b):
    "Equal JSON results: text, tokens and times exactly; model probabilities to float32 round-off."
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            if k in ("start", "end", "seek", "id", "text", "tokens", "word", "temperature"): assert a[k] == b[k], k
            else: assert_json_close(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b): assert_json_close(x, y)
    else:
        assert a == b


def compare_outputs(d1, d2, stem="speech"):
    for fmt in FORMATS:
        ours, theirs = (open(os.path.join(d, f"{stem}.{fmt}"), encoding="utf-8").read() for d in (d1, d2))
        if fmt == "json": assert_json_close(json.loads(ours), json.loads(theirs))
        else: assert ours == theirs, fmt


@pytest.mark.parametrize("extra", [
    [],  # the whisper command's defaults: beam search (5), best_of 5, temperature fallback
    ["--word_timestamps", "True", "--max_line_width", "20", "--max_line_count", "2", "--highlight_words", "True",
     "--beam_size", "2", "--temperature_increment_on_fallback", "None"],  # one decode per window: words re-anchor
     # `seek`, so a random model makes many short windows
])
def test_cli_files_match_whisper_command(tmp_path, monkeypatch, ckpt, extra):
    audio = tmp_path / "speech.wav"
    shutil.copy(SPEECH, audio)
    common = [str(audio), "--model", ckpt, "--language", "en", "--device", "cpu", "--fp16", "False", "--verbose", "False", *extra]
    run_openai_cli(monkeypatch, [*common, "--output_dir", str(tmp_path / "openai")])
    assert run_mmfm_cli([*common, "--output_dir", str(tmp_path / "mmfm")], monkeypatch) == 0
    compare_outputs(tmp_path / "mmfm", tmp_path / "openai")
    assert json.loads((tmp_path / "mmfm" / "speech.json").read_text())["segments"]


RESULT = {"text": " Hi there. Bye -->", "language": "en", "segments": [
    {"id": 0, "seek": 0, "start": 0.0, "end": 1.5, "text": " Hi there.", "tokens": [1],
     "words": [dict(word=" Hi", start=0.0, end=0.4, probability=0.9), dict(word=" there.", start=0.4, end=1.5, probability=0.8)]},
    {"id": 1, "seek": 150, "start": 6.0, "end": 3725.5, "text": " Bye\t-->", "tokens": [2],
     "words": [dict(word=" Bye", start=6.0, end=6.5, probability=0.9), dict(word=" \t-->", start=6.5, end=3725.5, probability=0.1)]}]}
NO_WORDS = {**RESULT, "segments": [{k: v for k, v in s.items() if k != "words"} for s in RESULT["segments"]]}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("options", [{}, dict(max_words_per_line=1), dict(highlight_words=True),
                                     dict(max_line_width=9, max_line_count=1), dict(max_line_width=9),
                                     dict(max_line_count=3), dict(max_line_width=9, max_line_count=2, highlight_words=True)])
def test_writers_match_openai(fmt, options):
    for result in (RESULT, NO_WORDS):
        ours, theirs = io.StringIO(), io.StringIO()
        WRITERS[fmt](".").write_result(result, ours, **options)
        whisper.utils.get_writer(fmt, ".").write_result(result, theirs, **options)
        assert ours.getvalue() == theirs.getvalue()
        ours, theirs = io.StringIO(), io.StringIO()  # the same options through the `options` dict
        WRITERS[fmt](".").write_result(result, ours, options=options)
        whisper.utils.get_writer(fmt, ".").write_result(result, theirs, options=options)
        assert ours.getvalue() == theirs.getvalue()


def test_get_writer_all_and_bad_format(tmp_path):
    get_writer("all", str(tmp_path))(RESULT, "/x/talk.final.mp3")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"talk.final.{f}" for f in FORMATS)
    with pytest.raises(ConfigError): get_writer("docx", str(tmp_path))


def test_command_line_errors(tmp_path, ckpt, capsys):
    assert run_mmfm_cli([str(tmp_path / "missing.wav"), "--model", ckpt, "--language", "en", "--output_dir", str(tmp_path),
                         "--verbose", "False"]) == 1
    assert "Skipping" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([SPEECH, "--model", ckpt, "--highlight_words", "True"])
    assert e.value.code == 2 and "requires --word_timestamps True" in capsys.readouterr().err
    with pytest.raises(SystemExit): main([SPEECH, "--model", ckpt, "--language", "xx"])


def test_mmfm_command_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e: mmfm.cli.main(["--help"])
    assert e.value.code == 0 and "transcribe" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: mmfm.cli.main(["nonsense"])
    assert e.value.code == 2
    with pytest.raises(SystemExit): mmfm.cli.main(["transcribe", "--help"])
    assert "--hallucination_silence_threshold" in capsys.readouterr().out
