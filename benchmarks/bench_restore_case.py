"""How much of a written sentence the NeMo backend's case restoration gives back.

Parakeet CTC writes lowercase without punctuation. Every FLORES-200 devtest sentence (English and
Spanish) is turned into such a transcript (lowercased, punctuation removed) and restored with
s3tvr.backends.asr.nemo.restore_case; the result is compared with the original: the first
letter's case, the final mark, English "I", and what the rule cannot restore (capitals inside the
sentence, commas and other inner punctuation). Reads the shared data's FLORES-200 devtest (--data DIR;
benchmarks/README.md).

    python benchmarks/bench_restore_case.py [--data DIR]
"""

from __future__ import annotations

import argparse
import re

from shared_data import add_argument, use

from s3tvr.backends.asr.nemo import restore_case


def as_parakeet(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", sentence.lower()).split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_argument(ap)
    folder = use(ap.parse_args().data) / "text" / "flores200_devtest"
    for lang, name in (("en", "eng_Latn"), ("es", "spa_Latn")):
        sentences = [s.strip() for s in (folder / f"{name}.devtest").read_text().splitlines() if s.strip()]
        n = len(sentences)
        first = end = pronoun = inner_caps = inner_punct = 0
        pronouns = 0
        for ref in sentences:
            out = restore_case(as_parakeet(ref), lang)
            first += out[:1] == ref[:1]
            end += out[-1:] == ref.rstrip("\"”»)'")[-1:]  # the mark before any closing quote
            inner_caps += bool(re.search(r"\s[A-ZÁÉÍÓÚÑ]", ref))
            inner_punct += bool(re.search(r"[,;:()«»\"“”]", ref))
            if lang == "en" and re.search(r"\bI\b", ref):
                pronouns += 1
                pronoun += bool(re.search(r"\bI\b", out))
        print(f"{lang}: {n} FLORES sentences; restored correctly: first letter {first / n:.1%}, final mark {end / n:.1%}"
              + (f", 'I' {pronoun}/{pronouns}" if lang == "en" else "")
              + f"; not restorable by the rule: capitals inside the sentence in {inner_caps / n:.1%}, "
                f"inner punctuation in {inner_punct / n:.1%}")


if __name__ == "__main__":
    main()
