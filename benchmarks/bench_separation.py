"""What ``s3tvr dub --background keep`` costs, and how well it separates: Spleeter 2-stems on a
mix built from real recordings, whose sources are therefore known.

The mix: the Spanish FLEURS clips of tests/data, one after another with a second between them,
over real music (Kevin MacLeod's "Vibe Ace", tests/data's 12 s cut, repeated; or --music), at
44.1 kHz stereo, the voice leading by 6 dB in peak as in a film. Reports the model load, the
median separation time of --runs runs (seconds, seconds per minute of audio, real-time factor),
the process's peak resident memory, and the SI-SDR of each stem against its source beside the
mix's own (the improvement is what the separation adds).

    python benchmarks/bench_separation.py [--seconds 45] [--runs 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import soxr

from s3tvr.audio.decode import decode, load_audio
from s3tvr.audio.separation import RATE, load_separator

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019)."""
    estimate, reference = estimate - estimate.mean(), reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    noise = estimate - target
    return float(10 * np.log10((target @ target) / (noise @ noise)))


def build_mix(music_path: Path, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Music (2, n) and voice (n) at RATE, ``seconds`` long, scaled as in the tests."""
    music, rate = decode(music_path)
    if rate != RATE:
        music = soxr.resample(music.T, rate, RATE).T
    if music.shape[0] == 1:
        music = np.repeat(music, 2, axis=0)
    n = int(seconds * RATE)
    music = np.tile(music, (1, -(-n // music.shape[1])))[:2, :n]
    clips = [load_audio(p, RATE) for p in sorted(DATA.glob("fleurs-es-*.ogg"))]
    voice = np.zeros(n, np.float32)
    at = RATE  # a second of music first
    while at < n:
        for clip in clips:
            part = clip[:max(0, n - at)]
            voice[at:at + len(part)] = part / (np.abs(clip).max() + 1e-9)
            at += len(clip) + RATE
    return music * (0.25 / np.abs(music).max()), voice * 0.5


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=45.0, help="length of the mix (default 45)")
    ap.add_argument("--runs", type=int, default=3, help="separations timed; the median is reported (default 3)")
    ap.add_argument("--music", type=Path, default=DATA / "vibe-ace_12s.ogg", help="the music under the voice")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()

    music, voice = build_mix(args.music, args.seconds)
    mix = music + voice[None, :]
    before = peak_rss_mb()
    started = time.perf_counter()
    separator = load_separator(args.device)
    load_s = time.perf_counter() - started
    loaded = peak_rss_mb()
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        stems = separator.separate(mix, RATE)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    minutes = args.seconds / 60

    print(f"Spleeter 2-stems on {args.device}, {args.seconds:.0f} s of 44.1 kHz stereo, {args.runs} runs")
    print(f"{'':<26}{'value':>10}")
    print(f"{'model load s':<26}{load_s:>10.2f}")
    print(f"{'separation s (median)':<26}{median:>10.2f}   runs: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"{'s per minute of audio':<26}{median / minutes:>10.2f}")
    print(f"{'real-time factor':<26}{median / args.seconds:>10.3f}")
    print(f"{'peak RSS MB':<26}{peak_rss_mb():>10.0f}   (before the model {before:.0f}, loaded {loaded:.0f})")
    print()
    print(f"{'SI-SDR dB':<14}{'channel':>8}{'stem':>8}{'mix':>8}{'gain':>8}")
    for ch in range(2):
        for name, est, ref in (("accompaniment", stems.accompaniment[ch], music[ch]), ("vocals", stems.vocals[ch], voice)):
            stem, base = si_sdr(est, ref), si_sdr(mix[ch], ref)
            print(f"{name:<14}{ch:>8}{stem:>8.1f}{base:>8.1f}{stem - base:>+8.1f}")


if __name__ == "__main__":
    main()
