"""Latency of the live chain on real speech: replays the shared recordings in the source language
(FLEURS clips and a long recording with pauses) at real-time pace through a profile (default:
offline, es -> en: Silero VAD -> faster-whisper base translate -> Piper) and prints,
over all utterances, end of speech -> first translated audio (p50/p90), each stage's compute, and
the overhead ratio: latency / (endpoint silence + the stages' own compute for that utterance).
A ratio of 1.00 means the engine adds nothing to what the models and the endpoint wait cost.
Reads the shared data (--data DIR; benchmarks/README.md).

    python benchmarks/bench_latency.py [--config offline|stack] [--pair es-en] [--device cuda]
                                       [--set KEY=VALUE ...] [--log out.jsonl] [--data DIR]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import psutil
from shared_data import add_argument, speech, use

from s3tvr import Engine, load_config
from s3tvr.latency.percentile import percentile
from s3tvr.latency.record import UtteranceRecord


def clips(lang: str) -> list[Path]:
    return sorted(speech("fleurs").glob(f"fleurs-{lang}-*.ogg")) + sorted(speech("long").glob(f"silero_{lang}.wav"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="offline", help="preset or YAML (stack: NeMo, NLLB, XTTS on a GPU)")
    ap.add_argument("--pair", default="es-en", help="source-target; the clips are the shared ones in the source language")
    ap.add_argument("--device", help="cpu or cuda (default: the preset's)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--log", help="also write every utterance's record here")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    src, tgt = args.pair.split("-")
    recordings = clips(src)
    records = []
    cfg = load_config(args.config, args.overrides, src_lang=src, tgt_lang=tgt, device=args.device)
    with tempfile.TemporaryDirectory() as tmp, Engine(cfg) as engine:  # the models load once for every clip
        for clip in recordings:
            session = engine.session(input=str(clip), output=str(Path(tmp) / "out.wav"), log_path=args.log or None)
            records += session.run().records
    vad = cfg.vad
    spoken = [r for r in records if r.latency_s is not None]
    lat = [r.latency_s for r in spoken]
    compute = [sum(r.stage_compute().values()) for r in spoken]

    def endpoint(r: UtteranceRecord) -> float:  # the silence that ended this utterance: shorter for long ones
        long = r.seg_end_s - r.seg_start_s - vad.preroll_ms / 1000 >= vad.long_after_s
        return (vad.long_endpoint_ms if long else vad.endpoint_ms) / 1000

    ratio = [r.latency_s / (endpoint(r) + c) for r, c in zip(spoken, compute)]
    print(f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; {args.config} {args.pair} on {cfg.device}; "
          f"{len(recordings)} recordings, {len(records)} utterances, {len(spoken)} spoken")
    print(f"end of speech -> first audio: p50 {percentile(lat, 50):.2f} s  p90 {percentile(lat, 90):.2f} s  "
          f"mean {statistics.fmean(lat):.2f} s  best {min(lat):.2f} s  worst {max(lat):.2f} s")
    stages: dict[str, list[float]] = {}
    for r in spoken:
        for name, sec in r.stage_compute().items():
            stages.setdefault(name, []).append(sec)
    waits = [r.t_vad_emit - r.t_speech_end for r in spoken]
    print("per stage, median s: endpoint wait " + f"{statistics.median(waits):.2f}  "
          + "  ".join(f"{n} {statistics.median(v):.2f}" for n, v in stages.items()))
    print(f"overhead ratio latency / (endpoint silence + compute): p50 {percentile(ratio, 50):.2f}  p90 {percentile(ratio, 90):.2f}")


if __name__ == "__main__":
    main()
