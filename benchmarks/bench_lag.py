"""Does the lag grow over a long talk? Sentence mode against simultaneous mode on long Spanish
input, at real-time pace, offline profile: the shared 60 s talk, and a talk of at least 10
minutes built from the shared recordings (the 60 s talk and the five FLEURS clips, 1 s apart,
repeated). For each: the field's latency per source utterance (StartOffset, EndOffset, first
audio), the mean EndOffset over the first and over the last minute of speech (the issue's
target: last <= first + 1 s), how many utterances lag control sped up, and CPU seconds per
second of input (the real-time factor; below 1 keeps up). ``--modes auto`` also says which mode
auto chose and why. The issue's one-core check: ``taskset -c 0 .venv/bin/python benchmarks/bench_lag.py
--modes sentence simultaneous auto --out eval-out/lag-1core``.

    .venv/bin/python benchmarks/bench_lag.py [--minutes 10] [--modes sentence simultaneous auto] [--out eval-out/lag]
                                              [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.latency.field_metrics import END_PARTS, end_part_figures, field_figures, source_latencies  # noqa: E402
from s3tvr.latency.record import read_log  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_window import reference_pass_s  # noqa: E402
from shared_data import add_argument, speech, talk, use  # noqa: E402

RATE = 16000


def long_input(path: Path, minutes: float) -> Path:
    """The 60 s talk and the FLEURS clips, 1 s of silence after each, repeated to ``minutes``."""
    if path.exists():
        return path
    gap = np.zeros(RATE, dtype=np.float32)
    clips = sorted(speech("fleurs").glob("fleurs-es-*.ogg"))
    round_ = np.concatenate([part for clip in [talk(), *clips] for part in (load_audio(clip, RATE), gap)])
    audio = np.tile(round_, int(np.ceil(minutes * 60 * RATE / len(round_))))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, RATE)
    return path


def set_args(sets) -> list[str]:
    """``--set KEY=VALUE`` for each override, as the s3tvr commands take them."""
    return [a for kv in sets for a in ("--set", kv)]


def run(mode: str, audio: Path, out: Path, sets: tuple[str, ...] = (), tag: str = "") -> dict:
    """One ``s3tvr run`` over ``audio`` at real-time pace (``sets``: --set overrides; ``tag`` names its files)."""
    stem = f"{audio.stem}-{mode}{tag}"
    log = out / f"{stem}.jsonl"
    log.unlink(missing_ok=True)
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    with (out / f"{stem}.log").open("w") as status:  # the session says which mode it ran in, and why
        subprocess.run([str(ROOT / ".venv/bin/s3tvr"), "run", "es", "--input", str(audio), "--mode", mode, "--output",
                        str(out / f"{stem}.wav"), "--log", str(log), *set_args(sets)],
                       check=True, stdout=subprocess.DEVNULL, stderr=status)
    ran_as = re.search(r"(sentence|simultaneous) mode \((.*)\)", (out / f"{stem}.log").read_text())
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - t0
    seconds = sf.info(audio).duration
    records = read_log(log)
    sources = source_latencies(records)
    start = min(r.t0_mono for r in records)  # the run's clock origin; speech ends are on the same clock
    ends = [(s, max(r.t_speech_end for r in records if r.source_id == s.source_id) - start) for s in sources]
    timed = [(t, s.end_offset) for s, t in ends if s.end_offset is not None]
    last = max(t for t, _ in timed)
    first_minute = [e for t, e in timed if t <= timed[0][0] + 60]
    last_minute = [e for t, e in timed if t >= last - 60]
    field = field_figures(sources)
    return {
        "input": audio.name, "mode": mode, "ran_as": ran_as.group(1) if ran_as else "?",
        "why": ran_as.group(2) if ran_as else "", "input_s": round(seconds, 1), "wall_s": round(wall, 1),
        "cpu_rtf": round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / seconds, 3),
        "sources": len(sources), "utterances": len(records), "sped_up": sum(1 for r in records if r.rate > 1),
        "first_minute_end_offset": round(statistics.fmean(first_minute), 2),
        "last_minute_end_offset": round(statistics.fmean(last_minute), 2),
        **{f"{name}_p50": round(m["p50"], 2) for name, m in field.items()},
        **{f"{name}_mean": round(m["mean"], 2) for name, m in end_part_figures(sources).items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--modes", nargs="+", default=["sentence", "simultaneous"])
    ap.add_argument("--inputs", nargs="+", choices=["talk", "long"], default=["talk", "long"],
                    help="talk: the shared 60 s talk; long: the talk of --minutes")
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "lag")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    inputs = [talk()] if "talk" in args.inputs else []
    if "long" in args.inputs:
        inputs.append(long_input(args.out / f"es-{args.minutes:g}min.wav", args.minutes))
    reference = reference_pass_s()
    print(f"this machine's full-window Whisper base pass over 10 s: {reference:.2f} s", flush=True)
    rows = [run(mode, audio, args.out) for audio in inputs for mode in args.modes]
    keys = ["input", "mode", "ran_as", "input_s", "sources", "StartOffset_p50", "EndOffset_p50", "first audio_p50",
            "first_minute_end_offset", "last_minute_end_offset", "sped_up", "cpu_rtf"]
    print("  ".join(keys))
    for row in rows:
        print("  ".join(str(row.get(k)) for k in keys))
    print("EndOffset's parts, mean s (they add up to the mean EndOffset): " + ", ".join(END_PARTS))
    for row in rows:
        print(f"{row['input']}  {row['mode']}  " + "  ".join(f"{n} {row[f'{n}_mean']}" for n in END_PARTS))
    (args.out / "lag.json").write_text(json.dumps({"full_window_pass_s": reference, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
