"""Which words to commit while the speaker talks: LocalAgreement-2 (two passes agree) against the
AlignAtt-style rule (a word whose aligned end lies ``threshold`` before the end of what was heard,
in one pass), on the same inputs, through the product's Whisper (faster-whisper base, the encoder
window cut, greedy, word times) and the product's commit code (s3tvr.live.agreement).

Each utterance (the shared Spanish FLEURS clips; the 60 s talk cut by the VAD) is replayed as a
live session would see it, on a simulated clock: a pass starts once ``--step`` more seconds were
heard and the previous pass is done, and costs what it cost here; at the end, after the endpoint's
wait, the last pass reads the uncommitted tail. Per policy: each committed word's lag (the clock
when it was committed - when it was spoken), the share committed before the end, WER of the
committed text against one pass over the whole utterance, and CPU seconds per second of speech.

    .venv/bin/python benchmarks/bench_commit.py [--policies agreement aligned:0.5 aligned:1.0] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_window import reference_pass_s  # noqa: E402
from shared_data import add_argument, speech, talk, use  # noqa: E402

from s3tvr.audio import SAMPLE_RATE  # noqa: E402
from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.backends.asr import faster_whisper  # noqa: E402
from s3tvr.config import VadConfig  # noqa: E402
from s3tvr.latency.percentile import percentile  # noqa: E402
from s3tvr.live.agreement import clause_text, commit_policy  # noqa: E402
from s3tvr.live.segmenter import speech_regions  # noqa: E402

ENDPOINT_S = 0.5  # vad.endpoint_ms: the wait before the last pass


def utterances() -> list[tuple[str, np.ndarray]]:
    """The five Spanish FLEURS clips, and the 60 s talk's utterances as the VAD cuts them."""
    out = [(clip.stem, load_audio(clip, SAMPLE_RATE)) for clip in sorted(speech("fleurs").glob("fleurs-es-*.ogg"))]
    audio = load_audio(talk(), SAMPLE_RATE)
    for k, (start, end) in enumerate(speech_regions(audio, VadConfig())):
        out.append((f"talk-{k}", audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]))
    return out


def replay(asr, audio: np.ndarray, policy: str, step_s: float, min_audio_s: float = 2.0) -> dict:
    """One utterance heard live under ``policy`` (``agreement`` or ``aligned:THRESHOLD``)."""
    name, _, threshold = policy.partition(":")
    state = commit_policy(name, 10.0, float(threshold or 1.0))
    duration = len(audio) / SAMPLE_RATE
    clock, heard, cpu, lags = 0.0, min_audio_s, 0.0, []

    def one_pass(until: float, start: float) -> tuple[list, float]:
        t0 = time.perf_counter()
        words = asr.hypothesis(audio[int(start * SAMPLE_RATE):int(until * SAMPLE_RATE)], state.prompt_before(start), "es")
        return words, time.perf_counter() - t0

    while heard < duration:
        start = state.buffer_start_s
        words, cost = one_pass(heard, start)
        clock, cpu = max(clock, heard) + cost, cpu + cost
        lags += [clock - w.end for w in state.update(words, start, heard)]
        state.trim(heard)
        heard = max(heard + step_s, clock)
    early = len(state.committed)
    start = state.tail_start(duration)
    words, cost = one_pass(duration, start)
    clock, cpu = max(clock, duration + ENDPOINT_S) + cost, cpu + cost
    lags += [clock - w.end for w in state.finish(words, start)]
    return {"text": state.text, "lags": lags, "early": early, "words": len(state.committed), "cpu": cpu, "seconds": duration}


def normalise(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=["agreement", "aligned:0.5", "aligned:1.0"])
    ap.add_argument("--step", type=float, default=1.0, help="simultaneous.step_s")
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "commit.json")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    print(f"this machine's full-window Whisper base pass over 10 s: {reference_pass_s():.2f} s", flush=True)
    asr = faster_whisper.Backend(faster_whisper.Config(), "es", "es")
    asr.setup()
    inputs = utterances()
    whole = {name: clause_text(asr.words(audio)) for name, audio in inputs}
    rows = []
    for policy in args.policies:
        runs = [replay(asr, audio, policy, args.step) for _, audio in inputs]
        lags = [lag for r in runs for lag in r["lags"]]
        wer = jiwer.wer([normalise(whole[n]) or "-" for n, _ in inputs], [normalise(r["text"]) or "-" for r in runs])
        rows.append({"policy": policy, "lag_p50": round(statistics.median(lags), 2), "lag_p90": round(percentile(lags, 90), 2),
                     "early": round(sum(r["early"] for r in runs) / sum(r["words"] for r in runs), 3),
                     "wer_vs_one_pass": round(wer, 4),
                     "cpu_per_s": round(sum(r["cpu"] for r in runs) / sum(r["seconds"] for r in runs), 3)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"{len(inputs)} utterances, {sum(len(a) for _, a in inputs) / SAMPLE_RATE:.0f} s of speech, step {args.step:g} s")
    print(f"{'policy':<14}{'word lag p50':>13}{'p90':>7}{'committed early':>17}{'WER vs one pass':>17}{'CPU s/s':>9}")
    for r in rows:
        print(f"{r['policy']:<14}{r['lag_p50']:>13.2f}{r['lag_p90']:>7.2f}{r['early']:>17.0%}{r['wer_vs_one_pass']:>17.1%}{r['cpu_per_s']:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
