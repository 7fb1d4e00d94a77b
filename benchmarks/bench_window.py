"""Whisper's encoder window cut to the speech: pass time and quality against the full 30 s window.

faster-whisper pads every pass to 30 s of mel frames; s3tvr's faster-whisper backend reads a window
as long as the audio plus a margin (s3tvr/backends/asr/faster_whisper.py). This prints, on this
machine, with Whisper base (int8, all cores) as s3tvr runs it:

1. the time of one pass (Spanish -> English, translate task, greedy without temperature fallback,
   whose retries would time the decoder's luck) over 2, 3, 5, 10 and 20 s of speech (the head of
   the shared 60 s Spanish talk), and of the encoder alone, full window against cut windows:
   medians of --repeats;
2. quality on every FLEURS clip of the shared data (both languages): corpus BLEU / chrF of the translate
   task against the FLORES English references, and WER of the transcribe task against FLEURS's
   transcripts (lowercase, no punctuation), for the full window and each margin; and, five
   sentences a language being few, the transcribe WER on the 32 shared LJSpeech sentences too;
3. the translate task on --flores FLORES-200 devtest Spanish sentences spoken by espeak-ng (Debian's
   espeak-ng; 0.5 s of silence either side, as the segmenter leaves): BLEU / chrF against the
   English references, full window against the chosen margin (synthetic speech, but a hundred
   sentences tell a difference that five cannot).

    .venv/bin/python benchmarks/bench_window.py [--margins 0.5 1 2] [--repeats 5] [--out eval-out/window.json] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shared_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.backends.asr.faster_whisper import WINDOW_MARGIN_S, load_model, token_cap, with_window  # noqa: E402
from s3tvr.eval.metrics import bleu_chrf, wer  # noqa: E402

RATE = 16000
LENGTHS_S = (2, 3, 5, 10, 20)


def windowed(model, audio, margin: float | None):
    return model if margin is None else with_window(model, audio, margin)


def run(model, audio, lang: str, task: str, margin: float | None, **options) -> tuple[str, float]:
    """One pass as the backend makes it (transcribe()); margin None: the full window."""
    start = time.perf_counter()
    segments, _ = windowed(model, audio, margin).transcribe(
        audio, language=lang, task=task, beam_size=1, condition_on_previous_text=False, without_timestamps=True,
        vad_filter=False, max_new_tokens=token_cap(audio), **options)
    text = " ".join(s.text.strip() for s in segments).strip()
    return text, time.perf_counter() - start


def encode_time(model, audio, margin: float | None) -> float:
    features = model.feature_extractor(audio)[:, :3000]  # as faster-whisper pads a segment: 30 s of frames
    features = np.pad(features, ((0, 0), (0, 3000 - features.shape[1])))
    start = time.perf_counter()
    windowed(model, audio, margin).encode(features)
    return time.perf_counter() - start


def pass_times(model, margins: list[float], repeats: int) -> list[dict]:
    talk = load_audio(shared_data.talk(), RATE)
    rows = []
    for seconds in LENGTHS_S:
        audio = talk[: seconds * RATE]
        row: dict = {"speech_s": seconds}
        for margin in [None, *margins]:
            name = "full" if margin is None else f"margin_{margin:g}"
            run(model, audio, "es", "translate", margin, temperature=0.0)  # warm-up
            row[name] = statistics.median(run(model, audio, "es", "translate", margin, temperature=0.0)[1] for _ in range(repeats))
            row[f"{name}_encoder"] = statistics.median(encode_time(model, audio, margin) for _ in range(repeats))
        rows.append(row)
        print(f"{seconds:>3} s of speech: full window {row['full']:.2f} s (encoder {row['full_encoder']:.2f} s), "
              + ", ".join(f"+{m:g} s {row[f'margin_{m:g}']:.2f} s = {row[f'margin_{m:g}'] / row['full']:.2f}x "
                          f"(encoder {row[f'margin_{m:g}_encoder'] / row['full_encoder']:.2f}x)" for m in margins), flush=True)
    return rows


def reference_pass_s(repeats: int = 5) -> float:
    """This machine's full-window pass over 10 s of Spanish speech (median of ``repeats``): the
    figure that lets a reader scale any absolute time measured here to their machine."""
    model = load_model("bundled:base", device="cpu", compute_type="int8")
    audio = load_audio(shared_data.talk(), RATE)[: 10 * RATE]
    run(model, audio, "es", "translate", None, temperature=0.0)  # warm-up
    return statistics.median(run(model, audio, "es", "translate", None, temperature=0.0)[1] for _ in range(repeats))


def quality(model, margins: list[float]) -> dict:
    fleurs = shared_data.speech("fleurs")
    clips = [json.loads(line) for line in (fleurs / "manifest.jsonl").read_text().splitlines()]
    out: dict = {}
    for lang in sorted({c["lang"] for c in clips}):
        mine = [c for c in clips if c["lang"] == lang]
        audio = [load_audio(fleurs / c["audio"], RATE) for c in mine]
        for margin in [None, *margins]:
            name = "full" if margin is None else f"margin_{margin:g}"
            translated = [run(model, a, lang, "translate", margin)[0] for a in audio]
            heard = [run(model, a, lang, "transcribe", margin)[0] for a in audio]
            scores = bleu_chrf(translated, [c["ref_eng"] for c in mine])
            row = {"bleu": scores["bleu"], "chrf": scores["chrf"],
                   "wer": wer([c["transcript_fleurs_normalized"] for c in mine], heard), "translations": translated}
            out.setdefault(lang, {})[name] = row
            print(f"{lang} ({len(mine)} clips) {name:>10}: translate BLEU {row['bleu']:.1f} chrF {row['chrf']:.1f}, "
                  f"transcribe WER {100 * row['wer']:.1f} %", flush=True)
    ljspeech = shared_data.speech("ljspeech")
    lines = (ljspeech / "transcripts.tsv").read_text().splitlines()[1:]
    refs = dict(line.split("\t", 1) for line in lines)
    audio = [load_audio(ljspeech / f"{name}.flac", RATE) for name in refs]
    for margin in [None, *margins]:
        name = "full" if margin is None else f"margin_{margin:g}"
        heard = [run(model, a, "en", "transcribe", margin)[0] for a in audio]
        out.setdefault("ljspeech", {})[name] = {"wer": wer(list(refs.values()), heard)}
        print(f"ljspeech ({len(audio)} clips) {name:>10}: transcribe WER {100 * out['ljspeech'][name]['wer']:.1f} %", flush=True)
    return out


def spoken_flores(model, sentences: int) -> dict:
    if not shutil.which("espeak-ng"):
        print("no espeak-ng: apt-get install espeak-ng for the FLORES comparison")
        return {}
    spanish = (shared_data.flores() / "spa_Latn.devtest").read_text().splitlines()[:sentences]
    english = (shared_data.flores() / "eng_Latn.devtest").read_text().splitlines()[:sentences]
    heard: dict[str, list[str]] = {"full": [], f"margin_{WINDOW_MARGIN_S:g}": []}
    silence = np.zeros(RATE // 2, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for text in spanish:
            subprocess.run(["espeak-ng", "-v", "es", "-s", "150", "-w", f"{tmp}/s.wav", text], check=True)
            audio = np.concatenate([silence, load_audio(Path(tmp) / "s.wav", RATE), silence])
            for name, margin in zip(heard, (None, WINDOW_MARGIN_S)):
                heard[name].append(run(model, audio, "es", "translate", margin)[0])
    out = {name: bleu_chrf(texts, english) for name, texts in heard.items()}
    out["identical"] = sum(a == b for a, b in zip(*heard.values()))
    for name in heard:
        print(f"FLORES es ({len(spanish)} sentences, espeak-ng) {name:>10}: translate BLEU {out[name]['bleu']:.1f} "
              f"chrF {out[name]['chrf']:.1f}", flush=True)
    print(f"identical translations: {out['identical']} of {len(spanish)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--margins", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--flores", type=int, default=100, help="FLORES sentences spoken by espeak-ng (0: none)")
    ap.add_argument("--out", type=Path, default=Path("eval-out/window.json"))
    shared_data.add_argument(ap)
    args = ap.parse_args()
    shared_data.use(args.data)
    model = load_model("bundled:base", device="cpu", compute_type="int8")
    result = {"pass_s": pass_times(model, args.margins, args.repeats), "quality": quality(model, args.margins),
              "flores_espeak": spoken_flores(model, args.flores) if args.flores else {}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
