"""A catalogue dubbed in this process and on a one-node local Ray cluster of the same CPUs: wall
time, each file's real-time factor, and Ray's overhead as a ratio (target: at most 10 %).

    python benchmarks/bench_catalogue.py [--clips 8] [--cpus 1] [--background duck]

The clips are 4 s cuts of the Spanish FLEURS recordings in tests/data, dubbed into English offline
(Whisper base translate + Piper). Both runs start cold (models load in each); the Ray run's end
to end time includes starting the local cluster, its catalogue time does not (it starts when
the workers are asked for).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from s3tvr.audio.decode import load_audio

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CUTS = [("fleurs-es-000.ogg", 0.5), ("fleurs-es-000.ogg", 7.5), ("fleurs-es-001.ogg", 0.5), ("fleurs-es-001.ogg", 11.0),
        ("fleurs-es-002.ogg", 0.3), ("fleurs-es-004.ogg", 0.3), ("fleurs-es-001.ogg", 16.0), ("fleurs-es-002.ogg", 4.5)]


def make_clips(folder: Path, n: int) -> None:
    for i, (name, start) in enumerate((CUTS * 2)[:n]):
        audio = load_audio(DATA / name)
        sf.write(folder / f"clip{i}.wav", audio[int(start * 16000):int((start + 4) * 16000)], 16000)


def dub(clips: Path, out: Path, background: str, *extra: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "s3tvr", "-q", "dub", str(clips), "-o", str(out), "--from", "es",
                           "--to", "en", "--background", background, *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"dub failed:\n{proc.stderr}")
    return wall, json.loads((out / "catalogue.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=1, help="Ray workers, one CPU each (in process: one worker)")
    parser.add_argument("--background", default="duck", choices=("duck", "keep"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "clips").mkdir()
        make_clips(root / "clips", args.clips)
        runs = {"in process": dub(root / "clips", root / "local", args.background),
                "ray": dub(root / "clips", root / "ray", args.background, "--ray", "auto", "--workers", str(args.cpus))}
    print(f"{args.clips} clips of 4 s, es -> en offline, --background {args.background}")
    print(f"{'':<12}{'end to end s':>14}{'catalogue s':>13}{'rtf median':>12}{'rtf per file':>14}")
    for name, (wall, data) in runs.items():
        rtfs = sorted(j["rtf"] for j in data["jobs"])
        print(f"{name:<12}{wall:>14.1f}{data['seconds']:>13.1f}{rtfs[len(rtfs) // 2]:>12.2f}   "
              + " ".join(f"{r:.2f}" for r in (j["rtf"] for j in data["jobs"])))
    (local_wall, local), (ray_wall, ray) = runs["in process"], runs["ray"]
    print(f"ray overhead: end to end {ray_wall / local_wall - 1:+.1%}, catalogue {ray['seconds'] / local['seconds'] - 1:+.1%} "
          "(target: at most +10 %)")
    for worker in ray["workers"]:
        print(f"ray worker {worker['host']}:{worker['pid']}: loads {worker['loads']}, RSS {worker.get('rss_mb')} MB")
    print(f"in-process worker: loads {local['workers'][0]['loads']}, RSS {local['workers'][0].get('rss_mb')} MB")


if __name__ == "__main__":
    main()
