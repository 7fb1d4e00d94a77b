"""How fast may the translated voice speak before listeners lose words? Lag control speeds the
voice up when the listener falls behind (audio.max_rate, 1.25 by default); here the offline voices
say FLORES sentences at each rate and the judge Whisper (base, as `s3tvr eval`'s) transcribes them:
WER against the text, and seconds of speech per sentence, per rate.

    .venv/bin/python benchmarks/bench_tempo.py [--sentences 20] [--rates 1.0 1.1 1.25 1.4] [--data DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from shared_data import add_argument, flores, use  # noqa: E402

from s3tvr.audio import SAMPLE_RATE  # noqa: E402
from s3tvr.backends import registry  # noqa: E402
from s3tvr.backends.asr import faster_whisper  # noqa: E402
from s3tvr.config import BackendSection  # noqa: E402
from s3tvr.eval.metrics import wer  # noqa: E402

VOICES = {"en": ("eng_Latn", "piper", {"voice": "bundled:joe"}), "es": ("spa_Latn", "kokoro", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=20)
    ap.add_argument("--rates", type=float, nargs="+", default=[1.0, 1.1, 1.25, 1.4])
    ap.add_argument("--languages", nargs="+", default=["en", "es"])
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    print(f"{'voice':<10}{'rate':>6}{'WER':>8}{'s / sentence':>14}")
    for lang in args.languages:
        code, backend, options = VOICES[lang]
        texts = (flores() / f"{code}.devtest").read_text().splitlines()[: args.sentences]
        tts = registry.create("tts", BackendSection(backend, options), src_lang=lang, tgt_lang=lang)
        tts.setup()
        judge = faster_whisper.Backend(faster_whisper.Config(task="transcribe"), lang, lang)
        judge.setup()
        for rate in args.rates:
            heard, seconds = [], []
            for text in texts:
                audio = np.concatenate(list(tts.speak(text, rate=rate)))
                audio16 = soxr.resample(audio, tts.sample_rate, SAMPLE_RATE)
                seconds.append(len(audio) / tts.sample_rate)
                heard.append(judge.transcribe(audio16, lang))
            print(f"{backend + ' ' + lang:<10}{rate:>6.2f}{wer(texts, heard):>8.1%}{statistics.fmean(seconds):>14.2f}", flush=True)
        tts.cleanup()


if __name__ == "__main__":
    main()
