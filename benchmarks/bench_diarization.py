"""Who speaks when, as ``s3tvr dub`` finds it: diarization error rate on conversations of 2, 3 and
4 real readers (FLEURS and LJSpeech clips of the shared data cut at their pauses and interleaved, a third
of the changes with no pause; s3tvr.eval.conversations), collar 0.25 s, and its cost per minute of
audio; then one whole dub of a two-reader conversation, to give diarization's share of its time.

    python benchmarks/bench_diarization.py [--seeds 10,11,12] [--no-dub] [--data DIR]

The clustering threshold was chosen on seeds 0-2 of the same readers' conversations: these seeds
interleave other pieces in another order, but the voices are the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from shared_data import add_argument, speech, use

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.voice_similarity import SpeakerEncoder
from s3tvr.config import load_config
from s3tvr.dub.diarize import diarize
from s3tvr.eval.conversations import build, der
from s3tvr.live.segmenter import load_vad, speech_regions

READERS = {  # one reader each, as Resemblyzer tells them apart (bench output lists the clips); under speech/
    "C": [f"fleurs/fleurs-en-00{i}.ogg" for i in (2, 3, 4)],
    "L": [f"ljspeech/LJ001-{i:04d}.flac" for i in range(1, 9)],
    "D": ["fleurs/fleurs-es-000.ogg", "fleurs/fleurs-es-002.ogg"],
    "E": ["fleurs/fleurs-es-003.ogg", "fleurs/fleurs-es-004.ogg"],
}
GROUPS = {2: "CL", 3: "CDL", 4: "CDEL"}


def reader(name: str) -> list[Path]:
    return [speech(clip) for clip in READERS[name]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="10,11,12")
    ap.add_argument("--no-dub", action="store_true", help="skip the whole dub (diarization's share of a dub's time)")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    cfg = load_config("offline")
    vad = load_vad(cfg.vad.onnx)
    encoder = SpeakerEncoder()
    encoder.setup()
    rows = []
    for n, group in GROUPS.items():
        for seed in map(int, args.seeds.split(",")):
            conv = build([reader(r) for r in group], seed=seed)
            regions = speech_regions(conv.audio, cfg.vad, vad)
            started = time.perf_counter()
            found = diarize(conv.audio, regions, encoder)
            seconds = time.perf_counter() - started
            score = der(conv.turns, [(t.start, t.end, t.speaker) for t in found.turns])
            rows.append({"speakers": n, "seed": seed, "minutes": len(conv.audio) / SAMPLE_RATE / 60, "found": found.speakers,
                         "s_per_min": seconds / (len(conv.audio) / SAMPLE_RATE / 60), **score})
    print(f"{'speakers':>8}{'convs':>6}{'minutes':>9}{'count right':>13}{'DER %':>8}{'missed':>8}{'false al.':>10}"
          f"{'confusion':>11}{'s per min':>11}")
    for n in GROUPS:
        mine = [r for r in rows if r["speakers"] == n]
        mean = {k: float(np.mean([r[k] for r in mine])) for k in ("der", "missed", "false_alarm", "confusion", "s_per_min")}
        print(f"{n:>8}{len(mine):>6}{sum(r['minutes'] for r in mine):>9.1f}{sum(r['found'] == n for r in mine):>10}/{len(mine)}"
              f"{mean['der']:>8.1f}{mean['missed']:>8.1f}{mean['false_alarm']:>10.1f}{mean['confusion']:>11.1f}{mean['s_per_min']:>11.2f}")
    print("(means over the conversations; collar 0.25 s; cost: embeddings and clustering, VAD not counted)")
    out = {"rows": rows}
    if not args.no_dub:
        out["dub"] = dub_share()
    Path("eval-out").mkdir(exist_ok=True)
    Path("eval-out/diarization.json").write_text(json.dumps(out, indent=1))


def dub_share() -> dict:
    """One dub of a two-reader conversation (en -> es offline, the original ducked): its wall time
    and the diarization's seconds from its sync report."""
    with tempfile.TemporaryDirectory() as tmp:
        conv = build([reader("C"), reader("L")[:4]], seed=10)
        src, out = Path(tmp) / "talk.wav", Path(tmp) / "talk.es.wav"
        sf.write(src, conv.audio, SAMPLE_RATE)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "s3tvr", "dub", str(src), "--from", "en", "--to", "es", "-o", str(out),
                        "--background", "duck"], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        speakers = json.loads(out.with_name("talk.es.sync.json").read_text())["speakers"]
    share = speakers["diarization_s"] / wall * 100
    voices = ", ".join(f"{name} {v['voice']}" for name, v in speakers["voices"].items())
    print(f"\na dub of {len(conv.audio) / SAMPLE_RATE:.0f} s of two readers (en->es offline): {wall:.1f} s in all, "
          f"diarization {speakers['diarization_s']:.2f} s ({share:.1f} % of it); found {speakers['found']} speakers, "
          f"voices {voices}")
    return {"audio_s": len(conv.audio) / SAMPLE_RATE, "wall_s": wall, **speakers, "share_pct": share}


if __name__ == "__main__":
    main()
