"""The offline profile in both directions, one run: es -> en (Whisper translate, Piper) and en -> es
(Whisper transcribe, Apertium, a Spanish voice) over the shared FLEURS clips at real-time pace,
through ``s3tvr eval``: ASR-BLEU and chrF (Whisper base judges the spoken translation), the text
translation's chrF, first audio after the end of speech and the field's StartOffset/EndOffset,
and the CPU seconds each second of speech costs. Prints one table and the machine's full-window
Whisper pass, so readers can scale the times; writes every figure to eval-out/directions.json.

    python benchmarks/bench_directions.py [--pairs es-en,en-es,en-es:tts=espeak] [--set KEY=VALUE ...] [--data DIR]

A pair may carry its own overrides after a colon (``en-es:tts=espeak``), so one run compares voices.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench_window import reference_pass_s
from shared_data import add_argument, use

from s3tvr.eval.runner import evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default="es-en,en-es,en-es:tts=espeak")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="applied to every pair, e.g. tts.backend=kokoro")
    ap.add_argument("--out", type=Path, default=Path("eval-out"))
    add_argument(ap)
    args = ap.parse_args()
    fleurs = use(args.data) / "speech" / "fleurs"
    reference = reference_pass_s()
    rows = []
    for row in args.pairs.split(","):
        pair, _, own = row.partition(":")
        result = evaluate(fleurs, pair, "offline", args.overrides + ([own] if own else []), realtime=True)
        lat, field = result.latency, result.latency["field"]
        rows.append({
            "pair": row, "clips": len(result.clips), "asr_bleu": result.asr_bleu["bleu"], "asr_chrf": result.asr_bleu["chrf"],
            "text_chrf": result.text_bleu["chrf"], "first_audio_p50_s": lat["p50_s"],
            "start_offset_p50_s": field["StartOffset"]["p50"], "end_offset_p50_s": field["EndOffset"]["p50"],
            "cpu_s_per_audio_s": lat["cpu_s_per_audio_s"], "stage_mean_s": lat["stage_mean_s"],
            "heard": [c.heard for c in result.clips],
        })
    print(f"\nmachine: {os.cpu_count()} cores; a full-window Whisper base pass over 10 s takes {reference:.2f} s")
    print(f"{'pair':<20}{'clips':>6}{'ASR-BLEU':>10}{'ASR-chrF':>10}{'text chrF':>11}{'first audio':>13}{'StartOffset':>13}"
          f"{'EndOffset':>11}{'CPU s/s':>9}   per stage (mean s)")
    for r in rows:
        stages = "  ".join(f"{k} {v:.2f}" for k, v in r["stage_mean_s"].items())
        print(f"{r['pair']:<20}{r['clips']:>6}{r['asr_bleu']:>10.1f}{r['asr_chrf']:>10.1f}{r['text_chrf']:>11.1f}"
              f"{r['first_audio_p50_s']:>12.2f}s{r['start_offset_p50_s']:>12.2f}s{r['end_offset_p50_s']:>10.2f}s"
              f"{r['cpu_s_per_audio_s']:>9.2f}   {stages}")
    print("(first audio, StartOffset, EndOffset: medians; first audio is after the end of speech)")
    args.out.mkdir(exist_ok=True)
    (args.out / "directions.json").write_text(json.dumps({"full_window_pass_s": reference, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
