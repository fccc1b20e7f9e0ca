"""mmfm.whisper vs openai-whisper vs transformers on this machine: same random weights, same 30 s input, same tokens.

Run: .venv/bin/python benchmarks/bench_whisper.py [--sizes tiny base] [--tokens 64] [--threads 1] [--repeats 3]
Prints encoder time per 30 s segment and decode time per token (greedy and beam search), with ratios to mmfm.
"""
import argparse, inspect, os, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

import whisper
from transformers import WhisperConfig, WhisperForConditionalGeneration

from mmfm.audio import N_SAMPLES, SAMPLE_RATE, log_mel_spectrogram
from mmfm.whisper.checkpoints import HF_TIED, load_model, rename_hf_key, save_openai_checkpoint
from mmfm.whisper.decoding import DecodingOptions, DecodingTask, decode
from mmfm.whisper.model import Whisper, dims_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from whisper_helpers import random_whisper  # the same seeded-weights builder the parity tests use


def random_model(dims, seed=0):
    "Every parameter seeded noise, as in the parity tests; strong decoder positions so greedy output varies."
    return random_whisper(dims, seed=seed, std=0.05, pos_std=2.0)


def hf_from(model):
    "A transformers WhisperForConditionalGeneration holding the same weights (through mmfm's rename table)."
    d = model.dims
    cfg = WhisperConfig(vocab_size=d.n_vocab, num_mel_bins=d.n_mels, d_model=d.n_audio_state, encoder_layers=d.n_audio_layer,
                        encoder_attention_heads=d.n_audio_head, decoder_layers=d.n_text_layer, decoder_attention_heads=d.n_text_head,
                        encoder_ffn_dim=4 * d.n_audio_state, decoder_ffn_dim=4 * d.n_text_state,
                        max_source_positions=d.n_audio_ctx, max_target_positions=d.n_text_ctx)
    hf = WhisperForConditionalGeneration(cfg).eval()
    ours = model.state_dict()
    state = {k: ours["decoder.token_embedding.weight" if k == HF_TIED else rename_hf_key(k)] for k in hf.state_dict()}
    hf.load_state_dict(state, strict=True)
    return hf


def test_signal():
    "30 s of a gliding tone with harmonics and noise, as log-Mel [1, 80, 3000]."
    t = np.arange(N_SAMPLES) / SAMPLE_RATE
    f = 200 + 150 * np.sin(2 * np.pi * 0.2 * t)
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    x = 0.3 * np.sin(phase) + 0.1 * np.sin(3 * phase) + 0.02 * np.random.default_rng(0).standard_normal(N_SAMPLES)
    return log_mel_spectrogram(x.astype(np.float32))[None]


def timed(fn, repeats):
    "Median wall time of `repeats` calls (after one warm-up), and the last result."
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); out = fn(); times.append(time.perf_counter() - t)
    return statistics.median(times), out


@torch.inference_mode()
def hf_greedy(hf, feats, prompt, n_tokens, suppress, blank):
    "Greedy decoding with transformers' own KV cache and the same token suppression as DecodingOptions."
    cache_arg = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"  # renamed in transformers 5.x
    ids = torch.tensor([prompt]); past = None; out = []
    for i in range(n_tokens):
        o = hf(encoder_outputs=(feats,), decoder_input_ids=ids if past is None else ids[:, -1:], use_cache=True, **{cache_arg: past})
        past = getattr(o, cache_arg)
        logits = o.logits[:, -1].float()
        logits[:, suppress] = -np.inf
        if i == 0: logits[:, blank] = -np.inf
        nxt = logits.argmax(-1)
        out.append(nxt.item()); ids = torch.cat([ids, nxt[:, None]], 1)
    return out


def bench(size, n_tokens, repeats):
    ours = random_model(dims_for(size))
    path = os.path.join(tempfile.mkdtemp(), f"{size}-random.pt"); save_openai_checkpoint(ours, path)
    ours, ref = load_model(path, device="cpu"), whisper.load_model(path, device="cpu")
    hf = hf_from(ours)
    mel = test_signal()
    rows = []
    with torch.inference_mode():
        t_ours, f_ours = timed(lambda: ours.embed_audio(mel), repeats)
        t_ref, f_ref = timed(lambda: ref.embed_audio(mel), repeats)
        t_hf, f_hf = timed(lambda: hf.model.encoder(mel).last_hidden_state, repeats)
    diff = max((f_ours - f_ref).abs().max().item(), (f_ours - f_hf).abs().max().item())
    rows.append(("encoder s / 30 s segment", t_ours, t_ref, t_hf, f"max |diff| {diff:.1e}"))

    eot = 50257 if ours.is_multilingual else 50256
    # fixed length: end-of-text suppressed, so every implementation writes exactly n_tokens
    greedy = DecodingOptions(language="en", fp16=False, without_timestamps=True, sample_len=n_tokens, suppress_tokens=[-1, eot])
    t_ours, r_ours = timed(lambda: decode(ours, f_ours, greedy), repeats)
    t_ref, r_ref = timed(lambda: whisper.decode(ref, f_ours, greedy), repeats)
    task = DecodingTask(ours, greedy)
    suppress = list(task._suppress_tokens()); blank = task.tokenizer.encode(" ") + [eot]
    t_hf, r_hf = timed(lambda: hf_greedy(hf, f_ours, list(task.initial_tokens), n_tokens, suppress, blank), repeats)
    same = r_ours[0].tokens == r_ref[0].tokens == r_hf[:len(r_ours[0].tokens)]
    n = len(r_ours[0].tokens)
    rows.append((f"greedy ms / token ({n} tokens)", 1e3 * t_ours / n, 1e3 * t_ref / n, 1e3 * t_hf / n, f"tokens identical: {same}"))

    beam = DecodingOptions(language="en", fp16=False, without_timestamps=True, sample_len=n_tokens // 2, beam_size=5, suppress_tokens=[-1, eot])
    t_ours, b_ours = timed(lambda: decode(ours, f_ours, beam), repeats)
    t_ref, b_ref = timed(lambda: whisper.decode(ref, f_ours, beam), repeats)
    n = n_tokens // 2
    rows.append((f"beam-5 ms / step ({n} steps)", 1e3 * t_ours / n, 1e3 * t_ref / n, float("nan"), f"tokens identical: {b_ours[0].tokens == b_ref[0].tokens}"))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens per decode (beam search: half)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU; times are medians of {args.repeats} runs")
    head = f"{'size':6} {'measure':30} {'mmfm':>9} {'openai':>9} {'hf':>9} {'openai/mmfm':>11} {'hf/mmfm':>8}  check"
    print(head); print("-" * len(head))
    for size in args.sizes:
        for name, a, b, c, check in bench(size, args.tokens, args.repeats):
            print(f"{size:6} {name:30} {a:9.3f} {b:9.3f} {c:9.3f} {b / a:11.2f} {c / a:8.2f}  {check}")


if __name__ == "__main__":
    main()
