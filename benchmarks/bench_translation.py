"""The translators side by side, in one run: Whisper's translate task, Apertium and the LLM
translator, on a 2-core machine. Prints, and writes to eval-out/translation.json:

1. text: BLEU and chrF on FLORES-200 devtest, both directions, 95 % intervals and paired bootstrap
   p-values against Apertium, seconds a sentence (p50, p90)  (bench_mt.py);
2. speech, synthetic: the same FLORES sentences spoken by the offline voices and heard by Whisper
   base, then translated (Whisper's translate task too, into English)  (bench_mt_speech.py);
3. speech, real: the ten FLEURS clips through ``s3tvr eval`` at real-time pace, the translation
   spoken and heard by Whisper base (ASR-BLEU, ASR-chrF), first audio after the end of speech,
   EndOffset, CPU seconds per second of speech;
4. live: the shared 60 s Spanish talk in sentence and simultaneous mode, Whisper translate against
   the LLM: first audio, EndOffset, CPU real-time factor, the process's peak memory  (bench_lag.py).

    python benchmarks/bench_translation.py [--n 200] [--spoken 100] [--parts text,spoken,real,live] [--data DIR]

About 50 minutes with the defaults here. The machine's full-window Whisper pass is printed so
readers can scale the times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
from pathlib import Path

import bench_lag
import bench_mt
import bench_mt_speech
from bench_window import reference_pass_s
from shared_data import add_argument, speech, talk, use

from s3tvr.eval.runner import evaluate

# How each system is asked of the offline profile (its default is the LLM).
# The LLM as measured for docs/measurements.md: never bypassed for pace (mt.pace_s=0), two sentences of context.
PROFILES = {"whisper-translate": ["asr.task=translate", "mt=none"], "apertium": ["mt=apertium"],
            "llm": ["mt.pace_s=0", "mt.context_sentences=2"]}
REAL = {"es-en": ["whisper-translate", "apertium", "llm"], "en-es": ["apertium", "llm"]}


def text_part(n: int, start: int) -> list[dict]:
    rows = []
    for pair in ("es-en", "en-es"):
        src, tgt = pair.split("-")
        lines = bench_mt.flores((src, tgt), start, n)
        outputs, seconds = {}, {}
        for system in ("apertium", "llm"):
            outputs[system], seconds[system] = bench_mt.translate_all(system, src, tgt, lines[src])
        scores = bench_mt.significance(outputs, lines[tgt])
        for system in outputs:
            t = sorted(seconds[system])
            rows.append({"pair": pair, "system": system, "n": n, **_scores(scores[system]),
                         "s_p50": round(statistics.median(t), 3), "s_p90": round(t[int(0.9 * (len(t) - 1))], 3)})
    return rows


def spoken_part(n: int, start: int, out: Path) -> list[dict]:
    rows = []
    for pair in ("es-en", "en-es"):
        src, tgt = pair.split("-")
        lines = bench_mt.flores((src, tgt), start, n)
        clips = bench_mt_speech.spoken(lines[src], src, out / "spoken")
        transcripts = bench_mt_speech.heard(clips, src, "transcribe")
        outputs = {s: bench_mt_speech.translated(s, src, tgt, transcripts) for s in ("apertium", "llm")}
        if tgt == "en":
            outputs["whisper-translate"] = bench_mt_speech.heard(clips, src, "translate")
        scores = bench_mt.significance(outputs, lines[tgt])
        rows += [{"pair": pair, "system": s, "n": n, **_scores(scores[s])} for s in outputs]
    return rows


def real_part(out: Path) -> list[dict]:
    rows = []
    for pair, systems in REAL.items():
        for system in systems:
            work = out / f"real-{pair}-{system}"
            work.mkdir(parents=True, exist_ok=True)
            result = evaluate(speech("fleurs"), pair, "offline", PROFILES[system], realtime=True, work_dir=work)
            lat = result.latency
            rows.append({"pair": pair, "system": system, "clips": len(result.clips), "asr_bleu": round(result.asr_bleu["bleu"], 1),
                         "asr_chrf": round(result.asr_bleu["chrf"], 1), "text_bleu": round(result.text_bleu["bleu"], 1),
                         "first_audio_p50": round(lat["p50_s"], 2), "end_offset_p50": round(lat["field"]["EndOffset"]["p50"], 2),
                         "cpu_s_per_s": round(lat["cpu_s_per_audio_s"], 2),
                         "mt_fallbacks": lat["mt_fallbacks"]})
    return rows


def live_part(out: Path) -> list[dict]:
    """The 60 s talk; Whisper's runs first, so the children's peak memory after the LLM's is the LLM's."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for system in ("whisper-translate", "llm"):
        for mode in ("sentence", "simultaneous"):
            row = bench_lag.run(mode, talk(), out, tuple(PROFILES[system]), tag=f"-{system}")
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append({"system": system, **{k: row[k] for k in ("mode", "ran_as", "sources", "first audio_p50",
                                                                  "EndOffset_p50", "StartOffset_p50", "cpu_rtf")},
                         "peak_rss_mb_so_far": round(peak)})
    return rows


def _scores(m: dict) -> dict:
    return {"bleu": m["BLEU"]["score"], "bleu_ci95": m["BLEU"]["ci95"], "bleu_p": m["BLEU"]["p_vs_baseline"],
            "chrf": m["chrF"]["score"], "chrf_ci95": m["chrF"]["ci95"], "chrf_p": m["chrF"]["p_vs_baseline"]}


def show(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    if rows:
        keys = list(rows[0])
        print("  ".join(keys))
        for r in rows:
            print("  ".join(str(r.get(k)) for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200, help="FLORES lines for the text part")
    ap.add_argument("--spoken", type=int, default=100, help="FLORES lines spoken for the synthetic speech part")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--parts", default="text,spoken,real,live")
    ap.add_argument("--out", type=Path, default=Path("eval-out"))
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    parts = args.parts.split(",")
    args.out.mkdir(exist_ok=True)
    reference = reference_pass_s()
    print(f"machine: {os.cpu_count()} cores; a full-window Whisper base pass over 10 s takes {reference:.2f} s", flush=True)
    result: dict = {"full_window_pass_s": reference}
    if "text" in parts:
        result["text"] = text_part(args.n, args.start)
        show(f"1. text, FLORES-200 devtest lines {args.start}-{args.start + args.n - 1} (p: paired bootstrap against apertium)",
             result["text"])
    if "spoken" in parts:
        result["spoken"] = spoken_part(args.spoken, args.start, args.out)
        show(f"2. speech, synthetic: {args.spoken} FLORES sentences spoken by Kokoro (es) / Piper (en), heard by Whisper base",
             result["spoken"])
    if "real" in parts:
        result["real"] = real_part(args.out)
        show("3. speech, real: FLEURS clips at real-time pace through s3tvr eval (judge: Whisper base)", result["real"])
    if "live" in parts:
        result["live"] = live_part(args.out / "live")
        show("4. live: the shared 60 s Spanish talk, es -> en, real-time pace", result["live"])
    (args.out / "translation.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
