"""Can Kokoro keep pace live on this machine, or must live use espeak-ng? Each offline voice speaks
FLORES devtest sentences (Spanish; English for Piper's English voice and Kokoro's English) through
the backend's own streaming speak(): real-time factor (synthesis seconds / audio seconds; CPU RTF: CPU seconds of all its threads /
audio seconds, which other processes on the machine cannot inflate), median
latency to the first chunk (a clause), and Whisper base's WER and chrF of what it hears, so the
voices' quality is compared too. Kokoro rows vary its voice, its threads and clause streaming.

    .venv/bin/python benchmarks/bench_voices.py [--sentences 10] [--voices jf_alpha ...] [--threads 1 2]
                                                 [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_window import RATE, reference_pass_s, run  # noqa: E402
from shared_data import add_argument, flores, use  # noqa: E402

from s3tvr.backends.asr.faster_whisper import load_model  # noqa: E402
from s3tvr.backends.tts import espeak, kokoro, piper  # noqa: E402
from s3tvr.eval.metrics import bleu_chrf, wer  # noqa: E402

DEFAULT = kokoro.Config().voice
FILES = {"es": "spa_Latn.devtest", "en": "eng_Latn.devtest"}


def sentences(lang: str, n: int) -> list[str]:
    return (flores() / FILES[lang]).read_text().splitlines()[:n]


def measure(tts, texts: list[str], listener, lang: str) -> dict:
    """Speak each text as a live session would (chunks as they come); time the first and the whole.
    Whisper listens only after all are spoken: its threads would otherwise compete with the voice's."""
    list(tts.speak("Hola, esto es una prueba." if lang == "es" else "Hello, this is a test."))  # warm-up
    first, synth, spoken = [], 0.0, []
    cpu = cpu_s()
    for text in texts:
        start = time.perf_counter()
        chunks = []
        for chunk in tts.speak(text):
            if not chunks:
                first.append(time.perf_counter() - start)
            chunks.append(chunk)
        synth += time.perf_counter() - start
        spoken.append(np.concatenate(chunks))
    cpu = cpu_s() - cpu
    audio_s = sum(len(a) for a in spoken) / tts.sample_rate
    heard = [run(listener, soxr.resample(a, tts.sample_rate, RATE), lang, "transcribe", None, temperature=0.0)[0]
             for a in spoken]
    return {"rtf": synth / audio_s, "first_chunk_p50_s": statistics.median(first), "cpu_rtf": cpu / audio_s, "synth_s": synth,
            "audio_s": audio_s, "wer": wer(texts, heard), "chrf": bleu_chrf(heard, texts)["chrf"], "heard": heard}


def cpu_s() -> float:
    """CPU seconds of this process's threads and its finished children (espeak-ng runs as one):
    what other processes on the machine cannot inflate."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def kokoro_rows(args) -> list[tuple[str, str, object]]:
    base = kokoro.Config(voice=args.voices[0], threads=args.threads[-1])
    rows = [(f"kokoro {v} threads={base.threads}", "es", replace(base, voice=v)) for v in args.voices]
    rows += [(f"kokoro {base.voice} threads={t}", "es", replace(base, threads=t)) for t in args.threads[:-1]]
    rows.append((f"kokoro {base.voice} threads={base.threads} no clauses", "es", replace(base, clauses=False)))
    rows.append((f"kokoro {base.voice} threads={base.threads}", "en", base))
    return rows


def build(config, lang: str):
    if isinstance(config, kokoro.Config):
        return kokoro.Backend(config, "xx", lang)
    if isinstance(config, espeak.Config):
        return espeak.Backend(config, "xx", lang)
    return piper.Backend(config, "xx", lang)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=10, help="the first N FLORES devtest sentences")
    ap.add_argument("--voices", nargs="+", default=[DEFAULT, *(v for v in kokoro.VOICES if v != DEFAULT)],
                    help="Kokoro voices (the first is the reference)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="Kokoro threads (the last is the reference)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "voices.json")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    reference = reference_pass_s()
    print(f"this machine's full-window Whisper base pass over 10 s: {reference:.2f} s", flush=True)
    listener = load_model("bundled:base", device="cpu", compute_type="int8")
    rows = [*kokoro_rows(args), ("espeak-ng", "es", espeak.Config()), ("piper joe (English)", "en", piper.Config())]
    results = []
    for name, lang, config in rows:
        tts = build(config, lang)
        tts.setup()
        row = {"voice": name, "lang": lang, **measure(tts, sentences(lang, args.sentences), listener, lang)}
        tts.cleanup()
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "heard"}), flush=True)
    words = statistics.mean(len(t.split()) for t in sentences("es", args.sentences))
    print(f"\n{args.sentences} FLORES devtest sentences, {words:.0f} words on average; "
          f"Whisper base (greedy, temperature 0) listens")
    print(f"{'voice':<38} {'lang':<4} {'RTF':>5} {'CPU RTF':>7} {'first chunk p50':>15} {'audio s':>8} {'WER %':>6} {'chrF':>5}")
    for r in results:
        print(f"{r['voice']:<38} {r['lang']:<4} {r['rtf']:>5.2f} {r['cpu_rtf']:>7.2f} {r['first_chunk_p50_s']:>13.2f} s "
              f"{r['audio_s']:>8.1f} "
              f"{100 * r['wer']:>6.1f} {r['chrf']:>5.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"full_window_pass_s": reference, "rows": results}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
