"""A voice for each speaker of a dub, and the same person in the same voice across files.

The speakers a dub finds are named S1, S2 ... in the order they first speak, unless a speakers
file (``--speakers-file``, one per catalogue) already knows them: each known speaker keeps a voice
print (the mean Resemblyzer embedding of their speech), so a speaker found again in another file
takes the same name and voice. The file is JSON the user may edit (rename a speaker, pick a voice):

    {"speakers": {"Ana": {"voice": "jf_alpha", "print": [...256 numbers...], "seconds": 84.2}}}

A voice is a name the TTS ships (Kokoro's styles), "clone" (a cloning TTS learns it from the
speaker's own phrases) or a recording to clone; "" is the one voice a single-voice TTS has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from s3tvr import edited_json, files
from s3tvr.bounds import Range
from s3tvr.edited_json import ListOf, MapOf, Number, Record, Text
from s3tvr.errors import InputError

log = logging.getLogger(__name__)

CLONE = "clone"
# A found speaker is a known one when their voice prints' cosine is at least this. Readers of
# different languages sit 0.44-0.65 apart, but speakers of one language up to 0.85 (FLEURS es):
# at 0.7, 9 of 70 same-language pairs of the shared data took each other's name and voice; at 0.8,
# 2 (one FLEURS pair), while one reader's other clips sat 0.81-0.92 (bench_diarization.py). Missing
# a known speaker gives a new name to rename; taking another's gives a wrong voice unsaid.
SAME_SPEAKER = 0.8


PRINT = 256  # numbers in a voice print (Resemblyzer's embedding)
FIX = "fix it, or give another --speakers-file"
# A voice print is a unit vector; seconds of speech heard, summed over a catalogue's files.
SPEAKER = Record({"voice": Text(4096, nullable=True), "seconds": Number(Range(0, 1e9)),
                  "print": ListOf(Number(Range(-1, 1)), PRINT, PRINT)}, required=frozenset({"print"}))
SPEAKERS_FILE = Record({"speakers": MapOf(SPEAKER)}, required=frozenset({"speakers"}))


def read_known(path: Optional[Path]) -> dict[str, dict[str, Any]]:
    """The speakers file's speakers (none when there is no file yet), checked as a file a user edits."""
    if path is None or not path.exists():
        return {}
    return _known(edited_json.load(path, SPEAKERS_FILE, FIX))


def parse_known(data: bytes, name: str) -> dict[str, dict[str, Any]]:
    """As :func:`read_known`, of the file's bytes (``name`` names it in a message)."""
    with edited_json.reading(name, FIX):
        return _known(edited_json.parse(data, SPEAKERS_FILE))


def _known(checked: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {**entry, "voice": entry.get("voice", ""), "print": np.asarray(entry["print"], dtype=np.float32)}
            for name, entry in checked["speakers"].items()}


def names_for(centroids: np.ndarray, known: dict[str, dict[str, Any]]) -> list[str]:
    """A name for each found speaker: the known speaker whose print matches (one to one, best
    matches first), else the next free S<n>."""
    from scipy.optimize import linear_sum_assignment

    names: list[Optional[str]] = [None] * len(centroids)
    if known and len(centroids):
        prints = np.stack([k["print"] / max(np.linalg.norm(k["print"]), 1e-9) for k in known.values()])
        cos = centroids @ prints.T
        for row, col in zip(*linear_sum_assignment(-cos)):
            if cos[row, col] >= SAME_SPEAKER:
                names[row] = list(known)[col]
    taken = set(known) | {n for n in names if n}
    free = (f"S{i}" for i in range(1, 10_000) if f"S{i}" not in taken)
    return [name or next(free) for name in names]


def assign(speakers: Sequence[str], given: dict[str, str], tts: Any) -> dict[str, str]:
    """A voice for each speaker: as ``given`` (the speakers file, the edited segments file), the
    rest in turn from what the TTS offers (each speaker a voice of their own while there are
    enough, the most talkative first: ``speakers`` comes in that order)."""
    voices = {s: given[s] for s in speakers if given.get(s)}
    for speaker in speakers:
        if speaker in voices:
            continue
        if tts.clones_voice:
            voices[speaker] = CLONE
        elif tts.voices:
            used = list(voices.values())
            voices[speaker] = min(tts.voices, key=lambda v: (used.count(v), tts.voices.index(v)))
        else:
            voices[speaker] = ""
    if len(speakers) > 1 and not tts.clones_voice and len(set(voices.values())) < len(speakers):
        log.warning("%d speakers but %s has %s: some share a voice (a voice per speaker: --set tts=kokoro, or the "
                    "stack's xtts)", len(speakers), tts.backend, f"{len(tts.voices)} voices" if tts.voices else "one voice")
    return voices


def check(voices: dict[str, str], tts: Any) -> None:
    """Every voice one the TTS can speak in, before any is spoken."""
    for speaker, voice in voices.items():
        if not voice or voice == CLONE and tts.clones_voice or voice in tts.voices:
            continue
        if tts.clones_voice and Path(voice).expanduser().is_file():
            continue
        offer = (f"one of {', '.join(tts.voices)}" if tts.voices else "nothing: it has one voice (\"\")") if not tts.clones_voice \
            else "\"clone\" or a recording of the voice"
        raise InputError(f"voice {voice!r} for {speaker}: {tts.backend} offers {offer}; fix the voices table")


def remember(path: Optional[Path], known: dict[str, dict[str, Any]], names: Sequence[str], centroids: np.ndarray,
             seconds: Sequence[float], voices: dict[str, str]) -> None:
    """The speakers file with this dub's speakers: prints averaged by speech time, voices as used."""
    if path is None:
        return
    out = {name: {**entry, "print": entry["print"]} for name, entry in known.items()}
    for name, centroid, secs in zip(names, centroids, seconds):
        if not np.any(centroid):  # not diarized (--speakers 1): no voice print to keep
            continue
        old = out.get(name)
        if old:
            weight = float(old.get("seconds", 0.0))
            merged = old["print"] * weight + centroid * secs
            old["print"] = merged / max(np.linalg.norm(merged), 1e-9)
            old["seconds"] = round(weight + secs, 2)
        else:
            out[name] = {"print": centroid, "seconds": round(float(secs), 2)}
        out[name]["voice"] = voices.get(name, out[name].get("voice", ""))
    files.write_json(path, {"speakers": {n: {"voice": e["voice"], "seconds": e.get("seconds", 0.0),
                                             "print": [round(float(x), 5) for x in e["print"]]} for n, e in out.items()}})
