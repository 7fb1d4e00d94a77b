"""VAD: ONNX vs TorchScript speed, and the endpoint silence that splits speech into sentences best.

For each endpoint silence it counts segments on recordings whose sentence count is known:
  - realtimestt narration: 9 sentences (the reference transcript of its project)
  - the open-dubbing video: 3 utterances (timings from its project's test)
  - 10 FLEURS clips: one sentence each
and reports how many clips were split into more segments than sentences (a split sentence
translates badly) or merged (costs latency), and the endpoint wait: from the end of an
utterance's speech to its release (the silence waited, plus the time the release took: Smart
Turn's call), median and 90th percentile over the utterances released by a pause (every clip is
followed by 1.5 s of silence). Then the same with Smart Turn (vad.turn): after turn_silence_ms
it asks whether the turn is finished; no waits up to turn_max_ms. Reads the shared data (--data DIR; benchmarks/README.md).

    python benchmarks/bench_vad.py [--data DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from shared_data import add_argument, use

from s3tvr.audio.decode import load_audio
from s3tvr.config import VadConfig
from s3tvr.live.messages import Block
from s3tvr.live.segmenter import WINDOW_S, Segmenter
from s3tvr.live.turn import SmartTurn

# Recordings of known sentence counts, under the shared data folder; then each FLEURS clip: one sentence.
CLIPS = [("speech/long/realtimestt_asr-reference.wav", 9), ("video/open-dubbing_englishvideo.mp4", 3)]


TURN = SmartTurn()


def segment(audio: np.ndarray, **kw) -> tuple[list, list[float]]:
    """The segments of ``audio`` followed by 1.5 s of silence, and the endpoint wait (s) of each one a pause released."""
    seg = Segmenter(VadConfig(**kw), "xx", "yy")
    seg.setup(turn=TURN)
    out, waits = [], []
    audio = np.concatenate([audio, np.zeros(24000, np.float32)])
    for i in range(0, len(audio), 512):
        t = time.perf_counter()
        new = seg.push(Block(audio[i:i + 512], time.monotonic()))
        waits += [seg._index * WINDOW_S - s.utt.seg_end_s + time.perf_counter() - t for s in new]
        out += new
    return out + seg.flush(), waits


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


def table(audios: list, label: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{label:>15} {'sentences':>9} {'segments':>8} {'split':>5} {'merged':>6} {'wait p50':>8} {'p90':>5}  per clip")
    for name, kw in rows:
        total = split = merged = found = 0
        detail, waits = [], []
        for _path, expected, audio in audios:
            segments, w = segment(audio, **kw)
            n = len(segments)
            waits += w
            total += expected
            found += n
            split += max(0, n - expected)
            merged += max(0, expected - n)
            detail.append(f"{n}/{expected}")
        p50, p90 = np.percentile(waits, [50, 90])
        print(f"{name:>15} {total:>9} {found:>8} {split:>5} {merged:>6} {p50:>8.2f} {p90:>5.2f}  {' '.join(detail)}")


def turn_speed(audio: np.ndarray) -> None:
    times = []
    for i in range(21):
        t = time.perf_counter()
        TURN.probability(audio[i * 8000:i * 8000 + 128000])
        times.append((time.perf_counter() - t) * 1000)
    print(f"smart turn   {np.median(times[1:]):.0f} ms per call (8 s of audio, 1 thread; median of 20, min {min(times[1:]):.0f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_argument(ap)
    data = use(ap.parse_args().data)
    clips = [(data / p, n) for p, n in CLIPS] + [(p, 1) for p in sorted((data / "speech/fleurs").glob("*.ogg"))]
    audios = [(p, n, load_audio(p)) for p, n in clips]
    TURN.setup()
    speed(audios[0][2])
    turn_speed(audios[0][2])
    table(audios, "endpoint_ms", [(str(ms), {"endpoint_ms": ms}) for ms in (200, 300, 400, 500, 600, 800)])
    table(audios, "turn silence/max", [(f"{ms}/{cap}", {"turn": True, "turn_silence_ms": ms, "turn_max_ms": cap})
                                       for cap in (500, 1000) for ms in (150, 200, 250, 300)])


if __name__ == "__main__":
    main()
