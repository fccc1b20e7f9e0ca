"""Log-Mel spectrogram speed: mmfm vs openai-whisper vs transformers' WhisperFeatureExtractor, side by side.

    python benchmarks/bench_audio.py [--repeat 5] [--device cpu|cuda]

Each implementation gets the same float32 signal (speech tiled to length) for 30 s and 10 min; the table reports
the median wall time of `--repeat` runs and the ratio to mmfm (>1 means mmfm is faster). transformers' extractor
has two paths: with torch installed (its default) it uses torch.stft; without torch it uses its NumPy code.
Both are timed: `hf-torch` through the public `__call__`, `hf-numpy` through `_np_extract_fbank_features`.
"""
import argparse, statistics, time
from pathlib import Path
import numpy as np
import torch

from mmfm.audio import SAMPLE_RATE, load_audio, log_mel_spectrogram

MEDIA = Path(__file__).resolve().parents[1] / "media"


def timeit(fn, repeat):
    fn()  # warm-up (caches, lazy init)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    import whisper
    from transformers import WhisperFeatureExtractor
    speech = load_audio(MEDIA / "speech_en.wav")
    fe = WhisperFeatureExtractor()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {a.device}")
    print(f"{'input':>8} {'mmfm':>10} {'whisper':>10} {'hf-torch':>10} {'hf-numpy':>10}   ratios to mmfm: "
          f"{'whisper':>8} {'hf-torch':>9} {'hf-numpy':>9}")
    for seconds in (30, 600):
        x = np.tile(speech, seconds * SAMPLE_RATE // len(speech) + 1)[: seconds * SAMPLE_RATE]
        xt = torch.from_numpy(x).to(a.device)
        sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
        t_ours = timeit(lambda: (log_mel_spectrogram(xt, device=a.device), sync()), a.repeat)
        t_wh = timeit(lambda: (whisper.log_mel_spectrogram(xt, device=a.device), sync()), a.repeat)
        # transformers' extractor works in NumPy; no truncation so that 10 min are really processed
        t_hf = timeit(lambda: fe(x, sampling_rate=SAMPLE_RATE, padding="longest", truncation=False,
                                 return_tensors="np"), a.repeat)
        t_np = timeit(lambda: fe._np_extract_fbank_features(x[None], "cpu"), max(1, a.repeat // 2))
        ours = log_mel_spectrogram(xt, device=a.device).cpu()
        ref = whisper.log_mel_spectrogram(xt, device=a.device).cpu()
        assert (ours - ref).abs().max() < 1e-4, "outputs differ"
        label = f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
        print(f"{label:>8} {t_ours * 1e3:8.1f}ms {t_wh * 1e3:8.1f}ms {t_hf * 1e3:8.1f}ms {t_np * 1e3:8.1f}ms   "
              f"{'':>15} {t_wh / t_ours:7.2f}x {t_hf / t_ours:8.2f}x {t_np / t_ours:8.1f}x")


if __name__ == "__main__":
    main()
