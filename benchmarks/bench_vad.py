"""VAD: ONNX vs TorchScript speed, and the endpoint silence that splits speech into sentences best.

For each endpoint silence it counts segments on recordings whose sentence count is known:
  - realtimestt narration: 9 sentences (the reference transcript of its project)
  - the open-dubbing video: 3 utterances (timings from its project's test)
  - 10 FLEURS clips: one sentence each
and reports how many clips were split into more segments than sentences (a split sentence
translates badly) or merged (costs latency). Reads ../shared/data.

    python benchmarks/bench_vad.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from s3tvr.audio.decode import load_audio
from s3tvr.config import VadConfig
from s3tvr.messages import Block
from s3tvr.vad import Segmenter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIPS = [(DATA / "speech/long/realtimestt_asr-reference.wav", 9), (DATA / "video/open-dubbing_englishvideo.mp4", 3)]
CLIPS += [(p, 1) for p in sorted((DATA / "speech/fleurs").glob("*.ogg"))]


def segment(audio: np.ndarray, **kw) -> list:
    seg = Segmenter(VadConfig(**kw), "xx", "yy")
    seg.setup()
    out = []
    for i in range(0, len(audio), 512):
        out += seg.push(Block(audio[i:i + 512], time.monotonic()))
    return out + seg.flush()


def speed(audio: np.ndarray) -> None:
    torch.set_num_threads(1)
    for onnx in (True, False):
        seg = Segmenter(VadConfig(onnx=onnx), "xx", "yy")
        seg.setup()
        windows = [audio[i:i + 512] for i in range(0, len(audio) - 512, 512)]
        times = []
        for _ in range(3):
            t = time.perf_counter()
            for w in windows:
                seg._score(w)
            times.append((time.perf_counter() - t) / len(windows) * 1000)
        print(f"{'onnx' if onnx else 'torchscript':<12} {np.median(times):.3f} ms per 32 ms window (median of 3 passes)")


def main() -> None:
    audios = [(p, n, load_audio(p)) for p, n in CLIPS]
    speed(audios[0][2])
    print(f"\n{'endpoint_ms':>11} {'sentences':>9} {'segments':>8} {'split':>5} {'merged':>6}  per clip (segments/sentences)")
    for endpoint in (200, 300, 400, 500, 600, 800):
        total = split = merged = found = 0
        detail = []
        for _path, expected, audio in audios:
            n = len(segment(audio, endpoint_ms=endpoint))
            total += expected
            found += n
            split += max(0, n - expected)
            merged += max(0, expected - n)
            detail.append(f"{n}/{expected}")
        print(f"{endpoint:>11} {total:>9} {found:>8} {split:>5} {merged:>6}  {' '.join(detail)}")


if __name__ == "__main__":
    main()
