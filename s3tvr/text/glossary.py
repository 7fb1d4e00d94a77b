"""A glossary: words the user chooses, recognised, translated and pronounced their way.

A file (``--glossary FILE``) is CSV with the header ``source,target,pronunciation,keep`` (the last
two columns optional) or YAML, a list of mappings with the same keys::

    source,target,pronunciation,keep
    ponencia,keynote,,
    Ana Lucía,,,yes
    Nginx,Nginx,engine x,

``target``: what the translation says for ``source``; ``keep``: the source stays as written (a
name), whatever the translator; ``pronunciation``: how the TTS says the target, respelt in the
target language's spelling. It is read as hostile input, like every file a user edits: bounded
in size, each problem a one-line :class:`InputError` naming the file, the line and the fix.

Where it acts (each caller asks this module, never the file): the ASR is biased towards the
source forms (:meth:`Glossary.hotwords`), the translator is given the terms found in a sentence
(:meth:`Glossary.found`; the LLM in its prompt, any other translator behind placeholders:
:meth:`Glossary.protect`/:meth:`Glossary.restore`) and its output checked (:meth:`Glossary.enforce`),
and the TTS reads the pronunciations (:meth:`Glossary.respell`). Matching is whole words, case and
accent blind (``ponencia`` finds ``Ponéncia``), the longest term first.

This module sits below the live path, dubbing, serving and the backends: it imports none of them.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from s3tvr.errors import InputError

MAX_BYTES = 1 << 20  # a glossary of thousands of terms is tens of kilobytes
MAX_TERMS = 2000
MAX_FIELD = 200  # characters in one field: a term is a few words
MAX_LINE = 1000  # characters in one line of the file
MAX_QUERY = 4000  # characters of a glossary one session sends (s3tvr serve's ?glossary=): it travels in the URL
MAX_SESSION_TERMS = 50
COLUMNS = ("source", "target", "pronunciation", "keep")
TRUE, FALSE = frozenset({"true", "yes", "1", "y"}), frozenset({"false", "no", "0", "n", ""})
# Whisper decodes 448 tokens, its prompt included; a pass writes at most 200 (faster_whisper.MAX_TOKENS) and
# faster-whisper keeps 223 of the hotwords: the terms past this many characters (150-200 tokens) are left out whole.
MAX_HOTWORDS = 600
# A translator passes this through untouched (an unknown word to Apertium, checked in tests/test_glossary.py);
# its number says which term goes back in. Apertium's stream format reserves [ ] ^ $ / @ < > { } * # + ~ \.
PLACEHOLDER = "ZXQ{}X"
_PLACEHOLDER = re.compile(r"ZXQ(\d+)X", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    """One word or phrase chosen: what is said (``source``), what the translation says
    (``target``; the source itself with ``keep``), how the TTS says that (``pronunciation``; "": as
    written)."""

    source: str
    target: str
    pronunciation: str = ""
    keep: bool = False

    @property
    def rendering(self) -> str:
        """What the translation must say."""
        return self.source if self.keep else self.target


@dataclass(frozen=True)
class Found:
    """A term where it occurs in a text: characters ``start`` to ``end``."""

    term: Term
    start: int
    end: int


@dataclass(frozen=True)
class Checked:
    """A translation after the glossary's check: the text, how many of the terms found in its
    source it renders, and a note naming those it lacks ("" when none)."""

    text: str
    applied: int
    note: str = ""


@dataclass(frozen=True)
class Glossary:
    """The terms of one file (or one session's), ``name`` saying where they came from."""

    terms: tuple[Term, ...]
    name: str = "the glossary"

    def __bool__(self) -> bool:
        return bool(self.terms)

    def found(self, text: str) -> list[Found]:
        """The terms whose source occurs in ``text``, in order, none overlapping (the longest wins)."""
        return _find(text, [(t.source, t) for t in self.terms])

    def hotwords(self) -> list[str]:
        """The source forms an ASR should expect, first ones first, within Whisper's prompt."""
        out, size = [], 0
        for term in self.terms:
            size += len(term.source) + 2
            if size > MAX_HOTWORDS:
                break
            out.append(term.source)
        return out

    def protect(self, text: str) -> tuple[str, list[Term]]:
        """``text`` with each term found replaced by a placeholder a translator passes through, and
        the terms in placeholder order (:meth:`restore` puts their renderings in)."""
        found = self.found(text)
        out, at = [], 0
        for n, f in enumerate(found):
            out += [text[at:f.start], PLACEHOLDER.format(n)]
            at = f.end
        return "".join(out) + text[at:], [f.term for f in found]

    def enforce(self, source: str, translation: str, protected: Optional[list[Term]] = None) -> Checked:
        """``translation`` (or a piece of it) of ``source`` with the glossary's renderings:
        placeholders (of :meth:`protect`, ``protected``) put back, and a term the translator left
        in the source's words replaced by its rendering. A term still missing is named in the note."""
        if protected is not None:
            translation = _PLACEHOLDER.sub(lambda m: _rendering(protected, m), translation)
        missing: list[str] = []
        applied = 0
        for f in self.found(source):
            term = f.term
            if _find(translation, [(term.rendering, term)]):
                applied += 1
                continue
            left = _find(translation, [(term.source, term)])  # the translator copied it: put the chosen words in
            if left and term.rendering:
                translation = translation[:left[0].start] + term.rendering + translation[left[0].end:]
                applied += 1
            else:
                missing.append(term.source)
        note = f"glossary: {', '.join(dict.fromkeys(missing))} not in the translation" if missing else ""
        return Checked(translation, applied, note)

    def respell(self, text: str) -> str:
        """``text`` as the TTS should read it: each rendering with a pronunciation respelt so."""
        spoken = [(t.rendering, t) for t in self.terms if t.pronunciation]
        out, at = [], 0
        for f in _find(text, spoken):
            out += [text[at:f.start], f.term.pronunciation]
            at = f.end
        return "".join(out) + text[at:]

    def to_query(self) -> str:
        """The glossary as one session sends it (``s3tvr client --glossary``, serve's ``?glossary=``):
        CSV that :func:`from_query` reads back, or a one-line InputError past a session's bounds."""
        fix = "keep the terms spoken, or give the server the whole file (serve --glossary)"
        if len(self.terms) > MAX_SESSION_TERMS:
            raise InputError(f"glossary {self.name} has {len(self.terms)} terms; a session sends at most {MAX_SESSION_TERMS}: {fix}")
        out = io.StringIO()
        rows = csv.writer(out, lineterminator="\n")
        rows.writerow(COLUMNS)
        rows.writerows((t.source, t.target, t.pronunciation, "yes" if t.keep else "") for t in self.terms)
        if out.tell() > MAX_QUERY:
            raise InputError(f"glossary {self.name} is {out.tell()} characters as a session sends it, at most {MAX_QUERY}: {fix}")
        return out.getvalue()

    def prompt_lines(self, text: str) -> list[str]:
        """The terms found in ``text`` as a translator's instructions say them, one each."""
        terms = dict.fromkeys(f.term for f in self.found(text))
        return [f"{t.source} -> {t.rendering}" + (" (keep it as written)" if t.keep else "") for t in terms]


NO_GLOSSARY = Glossary(())


def _rendering(terms: list[Term], match: re.Match) -> str:
    n = int(match.group(1))
    return terms[n].rendering if n < len(terms) else ""  # a number the translator made up: nothing


# -- matching ----------------------------------------------------------------------------------


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` case and accent blind (``Lucía`` -> ``lucia``), and for each character of that the
    index of the character of ``text`` it came from (folding may change the length: ß -> ss)."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        plain = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)).casefold()
        out.append(plain)
        index += [i] * len(plain)
    return "".join(out), index


@functools.lru_cache(maxsize=2 * MAX_TERMS)
def _pattern(form: str) -> Optional[re.Pattern]:
    """A form as whole words of folded text, any run of spaces between them (compiled once: every
    utterance looks for every term)."""
    words = fold(form)[0].split()
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)") if words else None


def _find(text: str, forms: Iterable[tuple[str, Term]]) -> list[Found]:
    """Where each form occurs in ``text`` as whole words, longest form first, none overlapping."""
    folded, index = fold(text)
    taken: list[Found] = []
    for form, term in sorted(forms, key=lambda f: -len(f[0])):
        pattern = _pattern(form)
        if pattern is None:
            continue
        for m in pattern.finditer(folded):
            start, end = index[m.start()], index[m.end() - 1] + 1
            if all(end <= f.start or start >= f.end for f in taken):
                taken.append(Found(term, start, end))
    return sorted(taken, key=lambda f: f.start)


# -- reading -----------------------------------------------------------------------------------


def from_query(text: str) -> Glossary:
    """One session's glossary, sent by its client (s3tvr serve's ``?glossary=``): CSV as in a file,
    smaller (:data:`MAX_QUERY`, :data:`MAX_SESSION_TERMS`); an empty one is no glossary."""
    if len(text) > MAX_QUERY:
        raise InputError(f"a glossary of {len(text)} characters: one session's has at most {MAX_QUERY} "
                         f"(and {MAX_SESSION_TERMS} terms); give the server a larger one with serve --glossary")
    if not text.strip():
        return NO_GLOSSARY
    return parse(text, "(glossary parameter)", max_terms=MAX_SESSION_TERMS)


def load(path: str | Path, name: str = "") -> Glossary:
    """The glossary in a CSV or YAML file (by its suffix: .yaml/.yml, else CSV), or a one-line
    InputError naming the file, the line and the fix."""
    path = Path(path).expanduser()
    where = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"glossary {where} is {size} bytes; at most {MAX_BYTES} (about {MAX_TERMS} terms): split it")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read glossary {where} ({exc.strerror or exc}): give a CSV or YAML file (--glossary FILE)") from None
    return parse(data, where, yaml=path.suffix.lower() in (".yaml", ".yml"))


def parse(data: bytes | str, name: str, yaml: bool = False, max_terms: int = MAX_TERMS) -> Glossary:
    """A glossary from its text (CSV, or YAML with ``yaml``); ``name`` says where it came from in messages."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise InputError(f"glossary {name} is {len(data)} bytes; at most {MAX_BYTES}: split it")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise InputError(f"glossary {name} line {line}: not UTF-8 text: save it as UTF-8") from None
    for n, line in enumerate(data.splitlines(), 1):
        if len(line) > MAX_LINE:
            raise InputError(f"glossary {name} line {n}: {len(line)} characters, at most {MAX_LINE}: one term a line")
    rows = _yaml_rows(data, name) if yaml else _csv_rows(data, name)
    return _glossary(rows, name, max_terms)


def _csv_rows(text: str, name: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) of each term line; blank lines and lines starting with # are skipped."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"glossary {name} has no terms: its first line is the header {','.join(COLUMNS)}, then a term a line")
    rows = []
    header: list[str] = []
    for n, line in lines:
        try:
            fields = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            raise InputError(f"glossary {name} line {n}: not CSV ({exc}): quote a field holding a comma") from None
        fields = [f.strip() for f in fields]
        if not header:
            header = _header(fields, name, n)
            continue
        if len(fields) > len(header):
            raise InputError(f"glossary {name} line {n}: {len(fields)} fields for the header's {len(header)}: "
                             f"quote a field holding a comma")
        rows.append((n, dict(zip(header, fields))))
    return rows


def _header(fields: list[str], name: str, n: int) -> list[str]:
    columns = [f.lower() for f in fields]
    for column in columns:
        if column not in COLUMNS:
            raise InputError(f"glossary {name} line {n}: unknown column {column[:40]!r}: the header is "
                             f"{','.join(COLUMNS)} (the last two optional)")
    if len(set(columns)) < len(columns):
        raise InputError(f"glossary {name} line {n}: a column twice in the header: give each of {','.join(COLUMNS)} once")
    if "source" not in columns:
        raise InputError(f"glossary {name} line {n}: no source column: the first line is the header {','.join(COLUMNS)}")
    return columns


def _yaml_rows(text: str, name: str) -> list[tuple[int, dict[str, str]]]:
    """The YAML list's mappings, each with its line, read as plain text (composed, never constructed:
    no tags run, no aliases expand)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"glossary {name}{line}: not YAML ({getattr(exc, 'problem', None) or 'unreadable'}): "
                         f"write a list of terms, '- source: ponencia' then '  target: keynote'") from None
    if not isinstance(root, yaml.SequenceNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise InputError(f"glossary {name} line {line}: not a list of terms: write each as '- source: WORD' with its "
                         f"target, pronunciation and keep")
    rows = []
    for item in root.value:
        n = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise InputError(f"glossary {name} line {n}: a term is a mapping of {', '.join(COLUMNS)}, not a "
                             f"{'list' if isinstance(item, yaml.SequenceNode) else 'plain value'}")
        row: dict[str, str] = {}
        for key, value in item.value:
            k = str(key.value).lower() if isinstance(key, yaml.ScalarNode) else ""
            if k not in COLUMNS:
                raise InputError(f"glossary {name} line {key.start_mark.line + 1}: unknown key {k[:40]!r}: a term has "
                                 f"{', '.join(COLUMNS)}")
            if not isinstance(value, yaml.ScalarNode):
                raise InputError(f"glossary {name} line {value.start_mark.line + 1}: {k} must be text, not a list or mapping")
            if k in row:
                raise InputError(f"glossary {name} line {key.start_mark.line + 1}: {k} twice in one term")
            row[k] = "" if value.tag.endswith(":null") else str(value.value).strip()
        rows.append((n, row))
    return rows


def _glossary(rows: list[tuple[int, dict[str, str]]], name: str, max_terms: int) -> Glossary:
    if len(rows) > max_terms:
        raise InputError(f"glossary {name} line {rows[max_terms][0]}: more than {max_terms} terms: keep the ones spoken")
    terms: list[Term] = []
    seen: dict[str, int] = {}
    for n, row in rows:
        term = _term(row, name, n)
        key = " ".join(fold(term.source)[0].split())
        if key in seen:
            raise InputError(f"glossary {name} line {n}: {term.source!r} again (first on line {seen[key]}): give each "
                             f"source once")
        seen[key] = n
        terms.append(term)
    return Glossary(tuple(terms), name)


def _term(row: dict[str, Any], name: str, n: int) -> Term:
    at = f"glossary {name} line {n}"
    for column, value in row.items():
        if len(value) > MAX_FIELD:
            raise InputError(f"{at}: {column} of {len(value)} characters, at most {MAX_FIELD}: a term is a few words")
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
            raise InputError(f"{at}: {column} holds a control character: write it as plain text")
    source, target = row.get("source", ""), row.get("target", "")
    keep_text = row.get("keep", "").lower()
    if keep_text not in TRUE | FALSE:
        raise InputError(f"{at}: keep is {keep_text[:20]!r}: write true, yes, 1 or leave it blank")
    keep = keep_text in TRUE
    if not re.search(r"\w", source):
        raise InputError(f"{at}: empty source: give the word or phrase as it is spoken")
    if keep and target and fold(target)[0] != fold(source)[0]:
        raise InputError(f"{at}: keep leaves {source!r} as written, but the target says {target!r}: leave the target "
                         f"empty, or keep blank")
    if not keep and not re.search(r"\w", target):
        raise InputError(f"{at}: no target for {source!r}: give its translation, or keep=yes to leave it as written")
    return Term(" ".join(source.split()), " ".join((target or source).split()), " ".join(row.get("pronunciation", "").split()), keep)
