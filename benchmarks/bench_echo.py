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

Against acoustic echo cancellers from packages, where they are importable (none is a dependency;
a missing one prints "not installed"): pyaec (speex's canceller and preprocessor), speexdsp (speex's
canceller) and aec-audio-processing (WebRTC's AudioProcessing, AEC3). Each is given the microphone
and what was played, both 16 kHz on the microphone's timeline, in 10 ms frames; its output becomes
the guard's verdict on the same utterances: "power", the share of the utterance's power it removed,
echo at the threshold; "VAD", echo when Silero finds no speech left in it. "AEC ms/s" is the
canceller's cost per second of microphone (it runs on all of it).

    python benchmarks/bench_echo.py [--data DIR] [--threshold 0.5]
    pip install --target /tmp/aecpkgs pyaec aec-audio-processing speexdsp  # builds: meson, swig, libspeexdsp-dev
    PYTHONPATH=/tmp/aecpkgs python benchmarks/bench_echo.py
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
from s3tvr.live.segmenter import Segmenter, load_vad, speech_regions
from s3tvr.weights import bundled

LEVELS_DB = (-6.0, -20.0)
DEVICE_RATE = 48000
BLOCK = 1024  # frames per speaker callback
PATH_S = 0.04  # speaker to microphone
RMS_DBFS = -20.0  # the played voice and the people, at the microphone (before the echo's gain)
AEC_FRAME = 160  # 10 ms: WebRTC's frame, and speex's
CONTEXT_S = 1.0  # the cleaned stream Silero hears before an utterance (the VAD verdict)
SPEEX_TAIL = 4800  # 0.3 s of adaptive filter: the 40 ms path and the room's reverberation, -60 dB at 0.3 s


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
    """(the microphone at 16 kHz, the speaker's blocks: (wall clock, 48 kHz samples), intervals, and
    what was played at 16 kHz on the microphone's timeline: a canceller's reference)."""
    n = int(total_s * SAMPLE_RATE)
    mic = (rng.standard_normal(n) * 10 ** (-55 / 20)).astype(np.float32)
    reference = np.zeros(n, dtype=np.float32)
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
        played16 = resample_poly(device, 1, DEVICE_RATE // SAMPLE_RATE).astype(np.float32)
        at = int(start * SAMPLE_RATE)
        reference[at:at + len(played16)] += played16[: n - at]
        heard = fftconvolve(played16, ir)[: len(device) // 3 + len(ir)]
        at = int((start + PATH_S) * SAMPLE_RATE)
        mic[at:at + len(heard)] += gain * heard[: n - at]
        intervals.append((start + PATH_S, start + PATH_S + len(device) / DEVICE_RATE, "echo"))
    return mic, blocks, intervals, reference


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


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def cancel_speex(mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """pyaec: aec-rs, speexdsp's canceller (an MDF adaptive filter of SPEEX_TAIL samples) with its
    preprocessor's residual-echo suppression, in AEC_FRAME frames. The package's ctypes library is
    called on numpy buffers (its Python wrapper copies every frame through lists)."""
    import ctypes

    from pyaec import Aec, lib

    aec = Aec(AEC_FRAME, SPEEX_TAIL, SAMPLE_RATE, True)
    near, far = pcm(mic), pcm(reference)
    out = np.zeros_like(near)
    ptr = ctypes.POINTER(ctypes.c_int16)
    for i in range(0, len(near) - AEC_FRAME + 1, AEC_FRAME):
        lib.AecCancelEcho(aec._aec, near[i:].ctypes.data_as(ptr), far[i:].ctypes.data_as(ptr),
                          out[i:].ctypes.data_as(ptr), AEC_FRAME)
    return out.astype(np.float32) / 32768


def cancel_speexdsp(mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """speexdsp (the Python binding, against the system's libspeexdsp): the same speex canceller
    (SPEEX_TAIL samples, AEC_FRAME frames), without the residual-echo suppression."""
    from speexdsp import EchoCanceller

    ec = EchoCanceller.create(AEC_FRAME, SPEEX_TAIL, SAMPLE_RATE)
    near, far = pcm(mic), pcm(reference)
    out = np.zeros_like(near)
    for i in range(0, len(near) - AEC_FRAME + 1, AEC_FRAME):
        out[i:i + AEC_FRAME] = np.frombuffer(ec.process(near[i:i + AEC_FRAME].tobytes(), far[i:i + AEC_FRAME].tobytes()),
                                             dtype=np.int16)
    return out.astype(np.float32) / 32768


def cancel_webrtc(mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """aec-audio-processing: WebRTC's AudioProcessing module, echo cancellation only (no noise
    suppression, no gain control: they would change the power the verdict compares), 10 ms frames,
    the reference given as the reverse stream just before the microphone's frame, the path's delay
    told (PATH_S)."""
    from aec_audio_processing import AudioProcessor

    ap = AudioProcessor(True, False, 2, False)  # echo cancellation; noise suppression (its level), gain control off
    ap.set_stream_format(SAMPLE_RATE, 1)
    ap.set_reverse_stream_format(SAMPLE_RATE, 1)
    near, far = pcm(mic), pcm(reference)
    out = np.zeros_like(near)
    for i in range(0, len(near) - AEC_FRAME + 1, AEC_FRAME):
        ap.process_reverse_stream(far[i:i + AEC_FRAME].tobytes())
        ap.set_stream_delay(int(PATH_S * 1000))  # WebRTC asks for it before every frame
        out[i:i + AEC_FRAME] = np.frombuffer(ap.process_stream(near[i:i + AEC_FRAME].tobytes()), dtype=np.int16)
    return out.astype(np.float32) / 32768


# name: (module to import, the canceller, how to install it)
CANCELLERS = {
    "pyaec": ("pyaec", cancel_speex, "pip install pyaec"),
    "speexdsp": ("speexdsp", cancel_speexdsp, "apt install libspeexdsp-dev swig; pip install speexdsp"),
    "webrtc": ("aec_audio_processing", cancel_webrtc, "pip install aec-audio-processing"),
}


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def judge_rows(segs, labels, judge):
    """Every labelled utterance judged: (counts of misses / false rejections, scores, ms per s of speech).
    ``judge(audio, t_end, start_s)`` -> (score, judged echo)."""
    counts = {k: [0, 0] for k in ("echo", "echo 1.5 s", "alone", "double talk")}
    scores = {k: [] for k in counts}
    cost = speech = 0.0
    for (audio, t_end, start_s, _), kind in zip(segs, labels):
        if kind not in counts:
            continue
        t0 = time.perf_counter()
        judged = [(kind, *judge(audio, t_end, start_s))]
        cost += time.perf_counter() - t0
        speech += len(audio) / SAMPLE_RATE
        if kind == "echo":  # its first 1.5 s, as simultaneous mode's first pass would have it judged
            head = audio[: int(1.5 * SAMPLE_RATE)]
            judged.append(("echo 1.5 s", *judge(head, t_end - (len(audio) - len(head)) / SAMPLE_RATE, start_s)))
        for k, score, echo in judged:
            scores[k].append(score)
            counts[k][1] += 1
            counts[k][0] += (not echo) if k.startswith("echo") else echo
    return counts, scores, 1000 * cost / max(speech, 1e-9)


def guard_judge(blocks, measure: str, threshold: float):
    guard = EchoGuard(threshold=threshold, measure=measure)
    pending = list(blocks)  # handed to the guard as they play, up to each utterance's end

    def judge(audio, t_end, start_s):
        while pending and pending[0][0] < t_end + 0.1:
            guard.played(pending[0][1], DEVICE_RATE, pending.pop(0)[0])
        score = guard.score(audio, t_end)
        return score, score >= threshold

    return judge


def canceller_judge(mic, cleaned, verdict: str, threshold: float, vad_model):
    """The canceller's output turned into the guard's verdict on the same utterance (its span of the
    microphone's timeline): "power", the share of the utterance's power the canceller removed (the
    guard's meaning: the share that was ours), echo at ``threshold``; "VAD", echo when Silero finds
    no speech left in the cleaned span, less than the segmenter's shortest utterance (min_speech_ms:
    a region's padding may reach into the span) (the score: the share of it without speech): how a
    canceller is used live, its output feeding the VAD."""
    def judge(audio, t_end, start_s):
        a = int(round(start_s * SAMPLE_RATE))
        near, left = mic[a:a + len(audio)], cleaned[a:a + len(audio)]
        if verdict == "power":
            score = float(np.clip(1 - np.sum(left.astype(np.float64) ** 2) / max(np.sum(near.astype(np.float64) ** 2), 1e-12), 0, 1))
            return score, score >= threshold
        # Silero over the cleaned stream from CONTEXT_S before the utterance (live, it runs on the whole
        # stream: a fresh state on a short span alone misses speech), its speech within the span counted
        c = max(0, a - int(CONTEXT_S * SAMPLE_RATE))
        vad_model.reset_states()
        lead, span = (a - c) / SAMPLE_RATE, len(audio) / SAMPLE_RATE
        regions = speech_regions(cleaned[c:a + len(audio)], VadConfig(), vad_model)
        speech = sum(max(0.0, min(e, lead + span) - max(s, lead)) for s, e in regions)
        return 1 - min(1.0, speech / span), speech < VadConfig().min_speech_ms / 1000

    return judge


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
    vad_model = load_vad(VadConfig().onnx)
    rows = []
    for level in LEVELS_DB:
        mic, blocks, intervals, reference = simulate(events, total_s, level, ir, np.random.default_rng(1))
        segs = segments(mic)
        labels = [label(a, b, intervals) for _, _, a, b in segs]
        rows.append((level, "off", *judge_rows(segs, labels, lambda *_: (0.0, False)), None))
        for name in MEASURES:
            rows.append((level, name, *judge_rows(segs, labels, guard_judge(blocks, name, args.threshold)), None))
        for name, (module, cancel, _) in CANCELLERS.items():
            if not installed(module):
                rows.append((level, name, None, None, None, None))
                continue
            t0 = time.perf_counter()
            cleaned = cancel(mic, reference)
            stream_ms = 1000 * (time.perf_counter() - t0) / (len(mic) / SAMPLE_RATE)
            for verdict in ("power", "VAD"):
                judge = canceller_judge(mic, cleaned, verdict, args.threshold, vad_model)
                rows.append((level, f"{name} {verdict}", *judge_rows(segs, labels, judge), stream_ms))
    print(f"{len(events)} events, {total_s:.0f} s per loudness; threshold {args.threshold}")
    print(f"{'echo dB':>7} {'measure':<13} {'misses':>7} {'(1.5 s)':>8} {'FR alone':>9} {'FR double':>10} "
          f"{'echo min':>9} {'alone max':>10} {'double max':>11} {'ms per s':>9} {'AEC ms/s':>9}")
    for level, name, counts, scores, ms, stream_ms in rows:
        if counts is None:
            module, _, how = CANCELLERS[name]
            print(f"{level:>7.0f} {name:<13} not installed ({how})")
            continue
        frac = {k: f"{c[0]}/{c[1]}" for k, c in counts.items()}
        edge = {k: f"{f(scores[k]):.2f}" if scores[k] and name != "off" else "-"
                for k, f in (("echo", min), ("alone", max), ("double talk", max))}
        stream = f"{stream_ms:>9.1f}" if stream_ms is not None else f"{'-':>9}"
        print(f"{level:>7.0f} {name:<13} {frac['echo']:>7} {frac['echo 1.5 s']:>8} {frac['alone']:>9} {frac['double talk']:>10} "
              f"{edge['echo']:>9} {edge['alone']:>10} {edge['double talk']:>11} {ms:>9.1f} {stream}")


if __name__ == "__main__":
    main()
