"""Speak sooner, judged in one run: for each setting compared, sentence mode beside them, the
offline profile at real-time pace on the shared Spanish FLEURS clips (``s3tvr eval``: ASR-BLEU of
the spoken output, WER of the committed transcript, the field's latency) and on the shared 60 s
talk (and with ``--long`` the 10.8-minute talk; ``bench_lag.run``): EndOffset with its parts,
StartOffset, first audio, LAAL, CPU seconds per second of speech. The settings are ``--set``
overrides by name; ``before`` is this issue's starting point where a setting can restore it (no
tentative tail, lag control from 1 s behind), ``final`` today's defaults.

    .venv/bin/python benchmarks/bench_sooner.py [--settings before final] [--long] [--set KEY=VALUE ...]
                                                [--out eval-out/sooner] [--data DIR]

``--set`` applies to every setting, e.g. ``--set mt=apertium`` (what a machine too slow for the LLM
translates live with) or ``--set mt.pace_s=0`` (the LLM whatever its pace).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_lag import long_input, run, set_args  # noqa: E402
from bench_window import reference_pass_s  # noqa: E402
from shared_data import add_argument, speech, talk, use  # noqa: E402

SETTINGS = {
    "sentence": ("simultaneous.mode=sentence",),
    "before": ("simultaneous.mode=simultaneous", "simultaneous.tail_after_ms=0", "audio.lag_s=1.0"),
    "final": ("simultaneous.mode=simultaneous",),
    "aligned": ("simultaneous.mode=simultaneous", "simultaneous.policy=aligned"),
}
PARTS = ("endpoint", "final pass", "mt", "tts", "queued", "spoken")


def fleurs(name: str, sets: tuple[str, ...], out: Path) -> dict:
    folder = out / f"fleurs-{name}"
    subprocess.run([str(ROOT / ".venv/bin/s3tvr"), "-q", "eval", "--data", str(speech("fleurs")), "--pair", "es-en",
                    "--out", str(folder), *set_args(sets)], check=True, stdout=subprocess.DEVNULL)
    result = json.loads((folder / "eval.json").read_text())
    lat = result["latency"]
    return {"input": "FLEURS", "setting": name, "asr_bleu": round(result["asr_bleu"]["bleu"], 1),
            "source_wer": round(result["source_wer"], 3) if result.get("source_wer") is not None else None,
            "cpu_s_per_s": round(lat["cpu_s_per_audio_s"], 2),
            **{f"{n}_p50": round(m["p50"], 2) for n, m in lat["field"].items()},
            **{f"{n}_mean": round(m["mean"], 2) for n, m in lat["end_parts"].items()}}


def live(name: str, sets: tuple[str, ...], audio: Path, out: Path) -> dict:
    row = run(sets[0].split("=")[1], audio, out, sets[1:], tag=f"-{name}")
    return {"input": audio.stem, "setting": name, "asr_bleu": None, "source_wer": None, "cpu_s_per_s": row["cpu_rtf"],
            **{k: v for k, v in row.items() if k.endswith(("_p50", "_mean"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=["before", "final"], choices=[s for s in SETTINGS if s != "sentence"])
    ap.add_argument("--long", action="store_true", help="also the 10.8-minute talk (11 minutes a setting)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="for every setting")
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "sooner")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"this machine's full-window Whisper base pass over 10 s: {reference_pass_s():.2f} s", flush=True)
    names = ["sentence", *args.settings]
    inputs = [talk()] + ([long_input(args.out / "es-10min.wav", 10.0)] if args.long else [])
    sets = {n: (*SETTINGS[n], *args.sets) for n in names}
    rows = [fleurs(n, sets[n], args.out) for n in names]
    rows += [live(n, sets[n], audio, args.out) for audio in inputs for n in names]
    head = ["input", "setting", "EndOffset_p50", "LAAL_p50", "StartOffset_p50", "first audio_p50", "cpu_s_per_s",
            "asr_bleu", "source_wer"]
    print("  ".join(head) + "  |  EndOffset's parts, mean: " + ", ".join(PARTS))
    for row in rows:
        print("  ".join(str(row.get(k)) for k in head) + "  |  " + "  ".join(str(row.get(f"{p}_mean")) for p in PARTS))
    (args.out / "sooner.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
