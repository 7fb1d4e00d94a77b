"""The glossary's hit rate (docs/glossary.md): of the names in FLORES sentences' references, how many
come out of the pipeline, with and without a glossary of them.

The set: the first ``--sentences`` FLORES-200 devtest lines (Spanish, 8 to 30 words) holding a name,
where a name is a run of capitalised words, not the sentence's first word, written the same in the
Spanish and the English reference (Carpanedo, Nueva Zelanda is not one: it differs). The glossary:
every name of the set, each ``keep`` (a name stays as written), one file for all the sentences as a
user would write one for an event. A hit: the name in the output as whole words (case and accent blind).

Each sentence is read by the offline Spanish voice (Kokoro jm_kumo; cached), heard by Whisper base
(with the glossary: its names as hotwords) and translated into English by the LLM translator and
by Apertium (with it: the LLM told the names in its prompt, Apertium given them behind
placeholders). With ``--text``, the Spanish references themselves are translated too: the
translator's part alone.

    .venv/bin/python benchmarks/bench_glossary.py [--sentences 20] [--systems llm,apertium] [--text]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import shared_data  # noqa: E402
from bench_mt_speech import spoken  # noqa: E402

from s3tvr.backends import registry  # noqa: E402
from s3tvr.config import BackendSection  # noqa: E402
from s3tvr.text import glossary  # noqa: E402

_NAME = re.compile(r"(?<![\w.])[A-ZÁÉÍÓÚÑ][\w'-]+(?:\s+(?:[A-Z]\.\s+)?[A-ZÁÉÍÓÚÑ][\w'-]+)*")  # John F. Kennedy too
_COMMON = {"El", "La", "Los", "Las", "Un", "Una", "En", "Por", "Para", "Sin", "Con", "Este", "Esta", "Sus", "Su"}


def names(spa: str, eng: str) -> list[str]:
    """The names of a sentence pair: capitalised runs past the Spanish sentence's first word, written
    the same in the English reference."""
    out = []
    for m in _NAME.finditer(spa):
        name = m.group(0)
        first = m.start() == 0 or spa[:m.start()].rstrip().endswith((".", "?", "!", "¿", "¡", "«", '"', ":"))
        if first or name.split()[0] in _COMMON or len(name) < 4:
            continue
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", eng):
            out.append(name)
    return list(dict.fromkeys(out))


def chosen(folder: Path, count: int) -> list[tuple[str, str, list[str]]]:
    spa = (folder / "spa_Latn.devtest").read_text().splitlines()
    eng = (folder / "eng_Latn.devtest").read_text().splitlines()
    out = []
    for s, e in zip(spa, eng):
        found = names(s, e)
        if found and 8 <= len(s.split()) <= 30:
            out.append((s, e, found))
        if len(out) == count:
            break
    return out


def hits(texts: list[str], terms: list[list[str]]) -> tuple[int, int]:
    """(names found in their sentence's output, names in all): each name once, however often it is said."""
    found = 0
    for text, names_ in zip(texts, terms):
        sentence = glossary.Glossary(tuple(glossary.Term(t, t, keep=True) for t in names_))
        found += len({f.term for f in sentence.found(text)})
    return found, sum(len(n) for n in terms)


def heard(clips: list, words: glossary.Glossary) -> tuple[list[str], float]:
    asr = registry.create("asr", BackendSection("faster-whisper", {"model": "bundled:base"}), src_lang="es", tgt_lang="en")
    asr.setup()
    try:
        t0 = time.perf_counter()
        texts = [asr.transcribe(clip, "es", hotwords=words.hotwords()) for clip in clips]
        return texts, (time.perf_counter() - t0) / len(clips)
    finally:
        asr.cleanup()


def translated(system: str, texts: list[str], words: glossary.Glossary) -> list[str]:
    section = BackendSection("llm", {"pace_s": 0}) if system == "llm" else BackendSection(system)
    mt = registry.create("mt", section, src_lang="es", tgt_lang="en")
    mt.setup()
    try:
        return [mt.translate_text_with(text, words).text for text in texts]
    finally:
        mt.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared_data.add_argument(parser)
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--systems", default="llm,apertium", help="translators, comma-separated")
    parser.add_argument("--text", action="store_true",
                        help="also translate the Spanish references themselves (the translator's part alone; the LLM's "
                             "rows double the time)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "s3tvr-bench-glossary",
                        help="where the spoken sentences are kept between runs")
    args = parser.parse_args()
    folder = shared_data.use(args.data) / "text" / "flores200_devtest"
    rows = chosen(folder, args.sentences)
    terms = [n for _, _, n in rows]
    every = list(dict.fromkeys(n for ns in terms for n in ns))
    words = glossary.Glossary(tuple(glossary.Term(n, n, keep=True) for n in every), "the set's names")
    print(f"{len(rows)} sentences, {sum(map(len, terms))} names ({len(every)} distinct; hotwords given: "
          f"{len(words.hotwords())}): {', '.join(every)}")
    clips = spoken([s for s, _, _ in rows], "es", args.cache)
    table = []
    for label, g in (("without", glossary.NO_GLOSSARY), ("with", words)):
        texts, asr_s = heard(clips, g)
        found, total = hits(texts, terms)
        table.append(("speech -> Whisper base (es)", label, found, total, f"{asr_s:.2f} s a sentence"))
        sources = [(texts, "speech")] + ([([s for s, _, _ in rows], "text")] if args.text else [])
        for system in args.systems.split(","):
            for source, what in sources:
                found, total = hits(translated(system, source, g), terms)
                table.append((f"{what} -> {system} (en)", label, found, total, ""))
    table.sort(key=lambda r: (r[0], r[1] == "with"))
    print(f"\n{'output':<30}{'glossary':<10}{'hits':>10}{'rate':>8}  note")
    for output, label, found, total, note in table:
        print(f"{output:<30}{label:<10}{f'{found}/{total}':>10}{found / total:>8.0%}  {note}")


if __name__ == "__main__":
    main()
