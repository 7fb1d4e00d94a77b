"""The echo guard (s3tvr/audio/echo.py) on looped-back real speech, offline (no audio device).

A conversation in full duplex on a loudspeaker is simulated on one timeline: a person says a
FLEURS sentence (the 10 shared clips, Spanish and English; nothing playing); s3tvr then plays its
translation, Piper's voice (bundled:joe) saying the sentence's English reference, which comes back into the microphone
through a room (a 40 ms path, a synthetic 0.3 s reverberation as loud as the direct sound, a noise floor at -55 dBFS) at a
loudness of ECHO dB relative to what was played; during every other playback, a second person
(an LJSpeech clip, at the level of the first) starts speaking 1 s in: double talk, the person
dominating. Every other sentence starts 0.3 s after the playback before it ended (what was
played is in the guard's window, but not in the speech).

Silero VAD (s3tvr's Segmenter, default settings) cuts the microphone into utterances as it would
live, stamped by 100 ms blocks as a microphone's are; the speaker hands the guard what it played
in 1024-frame blocks at 48 kHz. Each utterance is labelled by what it overlaps: echo only, the
person alone, or the person over the echo (double talk). For each measure, per loudness:
- misses: echo utterances the guard lets through (they would be translated); with the guard off
  (the control), every echo utterance the VAD cuts is one;
- false rejections: the person's utterances judged echo, alone and in double talk;
- the scores' margins (the lowest echo score, the highest of the person's) and the guard's cost
  per second of speech judged.

    python benchmarks/bench_echo.py [--data DIR] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy.signal import fftconvolve, resample_poly
from shared_data import add_argument, use

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.audio.echo import MEASURES, EchoGuard
from s3tvr.config import VadConfig
from s3tvr.live.messages import Block
from s3tvr.live.segmenter import Segmenter
from s3tvr.weights import bundled

LEVELS_DB = (-6.0, -20.0)
DEVICE_RATE = 48000
BLOCK = 1024  # frames per speaker callback
PATH_S = 0.04  # speaker to microphone
RMS_DBFS = -20.0  # the played voice and the people, at the microphone (before the echo's gain)


def rms_to(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * (10 ** (dbfs / 20) / max(float(np.sqrt(np.mean(x ** 2))), 1e-9))).astype(np.float32)


def room(rng: np.random.Generator, rt60: float = 0.3) -> np.ndarray:
    """A synthetic room: the direct path, then exponentially decaying noise (reverberation) with as
    much energy as the direct path (0 dB direct-to-reverberant: a loudspeaker a metre or so away)."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(1, n) / SAMPLE_RATE
    tail = rng.standard_normal(n - 1) * np.exp(-6.9 * t / rt60)
    ir = np.concatenate([[1.0], tail / np.sqrt(np.sum(tail ** 2))])
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def piper_voice():
    from piper import PiperVoice

    path = bundled.piper_joe()
    return PiperVoice.load(path, path.with_name(path.name + ".json"))


def synth(voice, text: str) -> tuple[np.ndarray, int]:
    chunks = list(voice.synthesize(text))
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def scenario(folder, voice, rng):
    """The timeline: the person's sentences, what was played (16 kHz, and at the device's rate with
    its start times), and the labelled intervals."""
    fleurs = folder / "speech" / "fleurs"
    rows = [json.loads(line) for line in (fleurs / "manifest.jsonl").read_text().splitlines()]
    others = sorted((folder / "speech" / "ljspeech").glob("LJ*.flac"))
    events = []  # (start s, 16 kHz audio, kind: person / played)
    t = 1.0
    for i, row in enumerate(rows):
        person = rms_to(load_audio(fleurs / row["audio"]), RMS_DBFS)
        events.append((t, person, "person"))
        t += len(person) / SAMPLE_RATE + 0.8
        spoken, rate = synth(voice, row["ref_eng"])
        events.append((t, (spoken, rate), "played"))
        played_s = len(spoken) / rate
        if i % 2 == 0:  # double talk: someone starts 1 s into the translation
            other = rms_to(load_audio(others[i]), RMS_DBFS)
            events.append((t + 1.0, other, "person"))
            t = max(t + played_s, t + 1.0 + len(other) / SAMPLE_RATE) + 1.5
        else:
            t += played_s + 0.3  # the next sentence starts just after the playback
    return events, t + 2.0


def simulate(events, total_s, level_db, ir, rng):
    """(the microphone at 16 kHz, the speaker's blocks: (wall clock, 48 kHz samples), intervals)."""
    n = int(total_s * SAMPLE_RATE)
    mic = (rng.standard_normal(n) * 10 ** (-55 / 20)).astype(np.float32)
    gain = 10 ** (level_db / 20)
    blocks, intervals = [], []
    for start, audio, kind in events:
        at = int(start * SAMPLE_RATE)
        if kind == "person":
            mic[at:at + len(audio)] += audio[: n - at]
            intervals.append((start, start + len(audio) / SAMPLE_RATE, "person"))
            continue
        spoken, rate = audio
        g = math.gcd(rate, DEVICE_RATE)
        device = resample_poly(spoken, DEVICE_RATE // g, rate // g).astype(np.float32)
        device = rms_to(device, RMS_DBFS)
        for k in range(0, len(device), BLOCK):
            blocks.append((start + k / DEVICE_RATE, device[k:k + BLOCK]))
        heard = fftconvolve(resample_poly(device, 1, DEVICE_RATE // SAMPLE_RATE), ir)[: len(device) // 3 + len(ir)]
        at = int((start + PATH_S) * SAMPLE_RATE)
        mic[at:at + len(heard)] += gain * heard[: n - at]
        intervals.append((start + PATH_S, start + PATH_S + len(device) / DEVICE_RATE, "echo"))
    return mic, blocks, intervals


def segments(mic: np.ndarray):
    """Silero's utterances of the microphone, stamped by 100 ms blocks: (audio, t_end, start s, end s)."""
    seg = Segmenter(VadConfig(), "es", "en")
    seg.setup()
    step = SAMPLE_RATE // 10
    out = []
    for i in range(0, len(mic), step):
        t_arrival = (i + step) / SAMPLE_RATE + 0.01
        for s in seg.push(Block(mic[i:i + step], t_arrival)):
            out.append(s)
    out += seg.flush()
    result = []
    for s in out:
        u = s.utt
        tail_s = u.seg_start_s + len(s.audio) / SAMPLE_RATE - u.seg_end_s
        result.append((s.audio, u.t_speech_end + tail_s, u.seg_start_s, u.seg_end_s))
    return result


def label(start: float, end: float, intervals) -> str:
    def overlap(kind: str) -> float:
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b, k in intervals if k == kind)

    person, echo = overlap("person"), overlap("echo")
    if person > 0.2:
        return "double talk" if echo > 0.2 else "alone"
    return "echo" if echo > 0.2 else "noise"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_argument(parser)
    parser.add_argument("--threshold", type=float, default=0.5, help="the score above which a segment is echo")
    args = parser.parse_args()
    folder = use(args.data)
    rng = np.random.default_rng(0)
    voice = piper_voice()
    events, total_s = scenario(folder, voice, rng)
    ir = room(rng)
    rows = []
    for level in LEVELS_DB:
        mic, blocks, intervals = simulate(events, total_s, level, ir, np.random.default_rng(1))
        segs = segments(mic)
        labels = [label(a, b, intervals) for _, _, a, b in segs]
        for name in ["off", *MEASURES]:
            guard = EchoGuard(threshold=args.threshold, measure=name if name != "off" else "coherence")
            pending = list(blocks)  # handed to the guard as they play, up to each utterance's end
            counts = {k: [0, 0] for k in ("echo", "echo 1.5 s", "alone", "double talk")}
            scores = {k: [] for k in counts}
            cost = speech = 0.0
            for (audio, t_end, _, _), kind in zip(segs, labels):
                if kind not in counts:
                    continue
                while pending and pending[0][0] < t_end + 0.1:
                    guard.played(pending[0][1], DEVICE_RATE, pending.pop(0)[0])
                t0 = time.perf_counter()
                s = guard.score(audio, t_end) if name != "off" else 0.0
                cost += time.perf_counter() - t0
                speech += len(audio) / SAMPLE_RATE
                judged = [(kind, s)]
                if kind == "echo":  # its first 1.5 s, as simultaneous mode's first pass would have it judged
                    head = audio[: int(1.5 * SAMPLE_RATE)]
                    judged.append(("echo 1.5 s", guard.score(head, t_end - (len(audio) - len(head)) / SAMPLE_RATE)
                                   if name != "off" else 0.0))
                for k, v in judged:
                    scores[k].append(v)
                    counts[k][1] += 1
                    judged_echo = name != "off" and v >= args.threshold
                    counts[k][0] += (not judged_echo) if k.startswith("echo") else judged_echo
            rows.append((level, name, counts, scores, 1000 * cost / max(speech, 1e-9)))
    print(f"{len(events)} events, {total_s:.0f} s per loudness; threshold {args.threshold}")
    print(f"{'echo dB':>7} {'measure':<10} {'misses':>7} {'(1.5 s)':>8} {'FR alone':>9} {'FR double':>10} "
          f"{'echo min':>9} {'alone max':>10} {'double max':>11} {'ms per s':>9}")
    for level, name, counts, scores, ms in rows:
        frac = {k: f"{c[0]}/{c[1]}" for k, c in counts.items()}
        edge = {k: f"{f(scores[k]):.2f}" if scores[k] and name != "off" else "-"
                for k, f in (("echo", min), ("alone", max), ("double talk", max))}
        print(f"{level:>7.0f} {name:<10} {frac['echo']:>7} {frac['echo 1.5 s']:>8} {frac['alone']:>9} {frac['double talk']:>10} "
              f"{edge['echo']:>9} {edge['alone']:>10} {edge['double talk']:>11} {ms:>9.1f}")

if __name__ == "__main__":
    main()
