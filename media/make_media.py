"""Regenerate the sample media in this folder (all made here, no downloads).

    python media/make_media.py

- speech_en.wav / speech_en.txt: espeak-ng (voice en-us, 150 wpm) resampled by sox to 16 kHz mono 16-bit.
- chord.wav: sox, a C major triad (261.63, 329.63, 392.00 Hz), 2 s, 16 kHz mono, peak-normalised to -3 dBFS.
- clip.mp4: PyAV, 2 s of a red square moving right on a dark background (64x64, 10 fps, H.264) with a
  440 Hz tone as its AAC audio track: the smallest video with both streams, for the video and audio loaders.
"""
import subprocess, tempfile
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent
TEXT = "The quick brown fox jumps over the lazy dog. Whisper turns speech into text."


def speech():
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(HERE / "speech_en.wav")], check=True)
    (HERE / "speech_en.txt").write_text(TEXT + "\n")


def chord():
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(HERE / "chord.wav"), "synth", "2.0",
                    "sine", "261.63", "sine", "329.63", "sine", "392.0", "remix", "-", "gain", "-n", "-3",
                    "fade", "0.05", "2.0", "0.1"], check=True)


def clip(seconds=2, fps=10, size=64, sr=16000):
    import av
    with av.open(str(HERE / "clip.mp4"), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        v.options = {"crf": "30", "preset": "veryslow"}
        a = out.add_stream("aac", rate=sr, layout="mono")
        for i in range(seconds * fps):
            img = np.full((size, size, 3), 20, np.uint8)
            x = 4 + i * (size - 20) // (seconds * fps)
            img[24:40, x:x + 16] = (220, 30, 30)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")): out.mux(pkt)
        for pkt in v.encode(None): out.mux(pkt)
        t = np.arange(seconds * sr) / sr
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        res = av.AudioResampler(format="fltp", layout="mono", rate=sr)
        for i in range(0, len(tone), 1024):
            fr = av.AudioFrame.from_ndarray(tone[None, i:i + 1024], format="flt", layout="mono")
            fr.sample_rate = sr
            for r in res.resample(fr):
                for pkt in a.encode(r): out.mux(pkt)
        for pkt in a.encode(None): out.mux(pkt)


if __name__ == "__main__":
    speech(); chord(); clip()
    for f in sorted(HERE.iterdir()): print(f"{f.stat().st_size:8d}  {f.name}")
