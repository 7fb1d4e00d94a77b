"""Soak: push hours of speech through the whole chain in fast mode, with fake backends that take
scripted time, and check that no utterance is lost or duplicated and that memory stays flat.

    python scripts/soak.py --minutes 60

Prints one JSON line of results; exits 1 if an utterance was lost, duplicated or out of order,
or if memory grew by more than --max-growth-mb between the first and last quarter of the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from s3tvr import Engine, load_config
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.audio.streams import BLOCK
from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.messages import Block
from s3tvr.live.sinks import Sink
from s3tvr.live.sources import Source

CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "realtimestt_asr-reference.wav"


class LoopSource(Source):
    """A recording repeated for ``seconds``, as fast as the chain takes it; constant memory."""

    name = "the soak's loop"
    timeline = True
    realtime = False

    def __init__(self, clip: Path, seconds: float):
        self.clip, self.seconds = clip, seconds
        self.audio = None

    def check(self) -> None:
        self.audio = load_audio(self.clip)

    open = check

    def blocks(self, stop: threading.Event):
        total = int(self.seconds * SAMPLE_RATE)
        sent = 0
        while sent < total and not stop.is_set():
            for i in range(0, len(self.audio), BLOCK):
                if sent >= total or stop.is_set():
                    return
                yield Block(self.audio[i:i + BLOCK], time.monotonic())
                sent += BLOCK


class CountingSink(Sink):
    """Counts what would be played, per utterance, and checks it arrives in spoken order; each
    chunk is heard the moment it is written, so nothing waits for real time."""

    def __init__(self):
        super().__init__()
        self.samples: dict[int, int] = {}
        self.ended: list[int] = []
        self.out_of_order = 0

    def write(self, chunk) -> None:
        uid = chunk.utt.utt_id
        if self.ended and uid <= self.ended[-1]:
            self.out_of_order += 1
        self.clock.heard(chunk.utt, time.monotonic(), len(chunk.samples) / chunk.sample_rate)
        self.samples[uid] = self.samples.get(uid, 0) + len(chunk.samples)

    def end(self, utt) -> None:
        self.ended.append(utt.utt_id)
        self.clock.ended(utt, now=True)


def soak(minutes: float, workers: int = 2) -> dict:
    cfg = load_config("fake", ["asr.delays=[0.03, 0.01, 0.05]", "mt.delays=[0.005]", "tts.delays=[0.01]",
                               f"pipeline.workers={{asr: {workers}}}"], src_lang="en", tgt_lang="es")
    process = psutil.Process()
    rss: list[float] = []
    ids: list[int] = []
    errors = 0

    def on_record(rec: UtteranceRecord) -> None:
        nonlocal errors
        ids.append(rec.utt_id)
        errors += rec.error is not None
        if len(ids) % 10 == 0:
            rss.append(process.memory_info().rss / 2**20)

    sink = CountingSink()
    translator = Engine(cfg).session(source=LoopSource(CLIP, minutes * 60), sink=sink, on_record=on_record, keep_records=False)
    start = time.monotonic()
    result = translator.run()
    took = time.monotonic() - start
    quarter = max(1, len(rss) // 4)
    growth = float(np.median(rss[-quarter:]) - np.median(rss[:quarter])) if rss else 0.0
    # The clip holds 9 sentences; across each join its last and first merge (it has little silence at its ends).
    expected = int(minutes * 60 / 52 * 8)
    return {
        "audio_minutes": minutes, "wall_s": round(took, 1), "utterances": len(ids), "expected_about": expected,
        "lost": sorted(set(range(max(ids, default=-1) + 1)) - set(ids))[:10], "duplicated": len(ids) - len(set(ids)),
        "in_order": ids == sorted(ids) and sink.out_of_order == 0, "errors": errors,
        "rss_first_quarter_mb": round(float(np.median(rss[:quarter])), 1) if rss else None,
        "rss_last_quarter_mb": round(float(np.median(rss[-quarter:])), 1) if rss else None,
        "rss_growth_mb": round(growth, 1), "aborted": result.aborted,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes of audio to push through (default 60)")
    ap.add_argument("--max-growth-mb", type=float, default=25.0, help="allowed memory growth (default 25 MB)")
    args = ap.parse_args()
    stats = soak(args.minutes)
    print(json.dumps(stats))
    ok = not stats["lost"] and not stats["duplicated"] and stats["in_order"] and not stats["aborted"]
    ok = ok and stats["rss_growth_mb"] <= args.max_growth_mb and stats["utterances"] >= 0.9 * stats["expected_about"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
