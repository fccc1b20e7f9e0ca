"""Encode/decode speed of mmfm.codec against transformers' EncodecModel with the same weights (CPU by default).

Run: .venv/bin/python benchmarks/bench_codec.py [--threads N] [--repeats R]
Both models are built from one random transformers checkpoint (saved with save_pretrained, loaded by
Codec.from_pretrained), so they compute the same function; codes are checked identical before timing.
"""
import argparse, statistics, tempfile, time
import torch
from transformers import EncodecConfig, EncodecModel
from transformers.utils import logging as hf_logging
from mmfm.codec import Codec

SIZES = {  # name: (EncodecConfig overrides, seconds of audio, bandwidth)
    "tiny": (dict(sampling_rate=16000, num_filters=8, upsampling_ratios=[4, 4, 4], hidden_size=32, num_lstm_layers=1,
                  codebook_size=64, target_bandwidths=[1.5, 3.0, 6.0, 12.0]), 5.0, 12.0),
    "encodec_24khz": (dict(), 5.0, 6.0),
}


def timed_pair(f_a, f_b, repeats):
    """Median seconds of two functions, timed alternately so that load on a shared machine hits both alike."""
    f_a(); f_b()                                           # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        for f, ts in ((f_a, ta), (f_b, tb)):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    print(f"device={args.device} threads={args.threads} repeats={args.repeats} (median seconds)")
    print(f"{'size':14s} {'op':7s} {'transformers':>12s} {'mmfm':>10s} {'mmfm/hf':>8s}")
    for name, (overrides, seconds, bw) in SIZES.items():
        torch.manual_seed(0)
        hf = EncodecModel(EncodecConfig(**overrides)).eval()
        with torch.no_grad():
            for layer in hf.quantizer.layers: layer.codebook.embed.normal_(std=0.1)
        with tempfile.TemporaryDirectory() as d:
            hf.save_pretrained(d); ours = Codec.from_pretrained(d)
        hf, ours = hf.to(args.device), ours.to(args.device)
        x = torch.randn(1, 1, int(seconds * hf.config.sampling_rate), device=args.device) * 0.1
        with torch.no_grad():
            codes = ours.encode(x, bw)
            assert torch.equal(codes, hf.encode(x, bandwidth=bw).audio_codes[0]), "codes differ"
            sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
            ops = {"encode": (lambda: (hf.encode(x, bandwidth=bw), sync()), lambda: (ours.encode(x, bw), sync())),
                   "decode": (lambda: (hf.decode(codes[None], [None]), sync()), lambda: (ours.decode(codes), sync()))}
            for op, (f_hf, f_ours) in ops.items():
                t_hf, t_ours = timed_pair(f_hf, f_ours, args.repeats)
                print(f"{name:14s} {op:7s} {t_hf:12.4f} {t_ours:10.4f} {t_ours / t_hf:8.2f}")
        print(f"{'':14s} ({seconds:g} s of audio at {hf.config.sampling_rate} Hz, {bw} kbit/s, K={codes.shape[1]})")


if __name__ == "__main__":
    main()
