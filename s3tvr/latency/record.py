"""The latency log's record: one frozen :class:`UtteranceRecord` per finished utterance, written
as one JSON object per line (appended and flushed as each finishes) and read back by the report,
eval, serve's clients and the benchmarks.

The collector at the end of a session's chain is the only writer. :meth:`UtteranceRecord.to_json`
is the log line's (and the WebSocket ``latency`` event's) object; :meth:`UtteranceRecord.from_json`
reads it back, and logs written before a field existed too, filling it in the way the reports
always read it, so no reader needs to know a log's age. This module sits below both the live path
and the reports: it imports neither.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Optional

from s3tvr import files
from s3tvr.errors import DiskFull, InputError, brief

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the live path's message, only for from_utt's signature
    from s3tvr.live.messages import UttInfo

_NUMBERS = ("latency_s", "t_speech_end", "t_vad_emit", "t_speech_start", "t_first_audio", "t_play_end", "out_dur_s", "rate")


@dataclass(frozen=True)
class StageRecord:
    """One stage's times for an utterance (monotonic seconds) and the backend that ran it."""

    start: Optional[float]
    end: Optional[float]
    first_out: Optional[float]  # first output of a streaming stage (TTS's first chunk)
    backend: str

    @property
    def compute_s(self) -> Optional[float]:
        """Seconds spent on the utterance until its first output (streaming) or its end; None if unfinished."""
        stop = self.first_out or self.end
        return None if self.start is None or stop is None else stop - self.start


@dataclass(frozen=True)
class UtteranceRecord:
    """One finished utterance, as its latency log line says (fields in the line's order). Times
    ``t_*`` are the run's monotonic seconds (``t0_unix``/``t0_mono`` map them to dates); None: it
    did not happen (never spoken) or an old log did not say."""

    utt_id: int
    src_lang: str
    tgt_lang: str
    seg_start_s: float  # where the speech sits on the input timeline
    seg_end_s: float
    t_speech_end: Optional[float]
    t_vad_emit: Optional[float]
    stages: dict[str, StageRecord]
    source_id: Any  # the source utterance a simultaneous clause belongs to (sentence mode: utt_id)
    last_clause: bool  # the source utterance's last clause: its end is the end of the source speech
    t_speech_start: Optional[float]
    t_first_audio: Optional[float]
    t_play_end: Optional[float]
    played: tuple[tuple[float, float], ...]  # the audio as heard: (start, seconds) per chunk
    latency_s: Optional[float]  # end of speech -> first translated audio
    src_text: str
    tgt_text: str
    out_dur_s: float
    rate: float  # the speaking rate lag control asked of the TTS (1.0: natural)
    asr_pacing: str  # simultaneous passes slowed or stopped to keep pace ("": neither)
    mt_note: str  # the translator's own reply not used whole: refused or late (its fallback translated), or stopped early
    glossary_terms: int  # terms of the session's glossary the translation renders (0: none, or no glossary)
    error: Optional[str]
    skipped: Optional[str]  # why nothing was spoken when nothing went wrong
    t0_unix: Optional[float]
    t0_mono: Optional[float]

    @property
    def pair(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"

    def stage_compute(self) -> dict[str, float]:
        """Seconds each finished stage spent on the utterance (until its first output for a streaming stage)."""
        return {name: seconds for name, s in self.stages.items() if (seconds := s.compute_s) is not None}

    @classmethod
    def from_utt(cls, utt: UttInfo, clock: Clock) -> UtteranceRecord:
        """The record of a finished utterance, rounded as the log keeps it."""
        latency = None if utt.t_first_audio is None else utt.t_first_audio - utt.t_speech_end
        return cls(
            utt_id=utt.utt_id, src_lang=utt.src_lang, tgt_lang=utt.tgt_lang,
            seg_start_s=round(utt.seg_start_s, 3), seg_end_s=round(utt.seg_end_s, 3),
            t_speech_end=utt.t_speech_end, t_vad_emit=utt.t_vad_emit,
            stages={name: StageRecord(s.start, s.end, s.first_out, s.backend) for name, s in utt.stages.items()},
            source_id=utt.utt_id if utt.source_id is None else utt.source_id, last_clause=utt.last_clause,
            t_speech_start=utt.t_speech_start, t_first_audio=utt.t_first_audio, t_play_end=utt.t_play_end,
            played=tuple((round(t, 4), round(sec, 4)) for t, sec in utt.played),
            latency_s=None if latency is None else round(latency, 4),
            src_text=utt.src_text, tgt_text=utt.tgt_text, out_dur_s=round(utt.out_dur_s, 3), rate=round(utt.rate, 3),
            asr_pacing=utt.asr_pacing, mt_note=utt.mt_note, glossary_terms=utt.glossary_terms, error=utt.error,
            skipped=utt.skipped,
            t0_unix=clock.t0_unix, t0_mono=clock.t0_mono,
        )

    def to_json(self) -> dict[str, Any]:
        """The log line's object (DESIGN.md's format; the WebSocket protocol's ``latency`` record)."""
        return {
            "utt_id": self.utt_id, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
            "seg_start_s": self.seg_start_s, "seg_end_s": self.seg_end_s,
            "t_speech_end": self.t_speech_end, "t_vad_emit": self.t_vad_emit,
            "stages": {name: {"start": s.start, "end": s.end, "first_out": s.first_out, "backend": s.backend}
                       for name, s in self.stages.items()},
            "source_id": self.source_id, "last_clause": self.last_clause, "t_speech_start": self.t_speech_start,
            "t_first_audio": self.t_first_audio, "t_play_end": self.t_play_end,
            "played": [[t, sec] for t, sec in self.played],
            "latency_s": self.latency_s, "src_text": self.src_text, "tgt_text": self.tgt_text,
            "out_dur_s": self.out_dur_s, "rate": self.rate, "asr_pacing": self.asr_pacing, "mt_note": self.mt_note,
            "glossary_terms": self.glossary_terms,
            "error": self.error, "skipped": self.skipped, "t0_unix": self.t0_unix, "t0_mono": self.t0_mono,
        }

    @classmethod
    def from_json(cls, d: Any) -> UtteranceRecord:
        """A log line's object back as a record; ValueError saying what is wrong if it is not one.
        Fields a log from before them lacks are what they meant then: each utterance its own source
        (``source_id`` = ``utt_id``) and its last clause, spoken at rate 1.0 with no pacing, its
        audio one chunk (:func:`_played`)."""
        problem = record_problem(d)
        if problem:
            raise ValueError(problem)
        return cls(
            utt_id=d["utt_id"], src_lang=d["src_lang"], tgt_lang=d["tgt_lang"],
            seg_start_s=d.get("seg_start_s", 0.0), seg_end_s=d.get("seg_end_s", 0.0),
            t_speech_end=d.get("t_speech_end"), t_vad_emit=d.get("t_vad_emit"),
            stages={name: StageRecord(s.get("start"), s.get("end"), s.get("first_out"), s.get("backend", ""))
                    for name, s in d.get("stages", {}).items()},
            source_id=d.get("source_id", d["utt_id"]), last_clause=d.get("last_clause", True),
            t_speech_start=d.get("t_speech_start"), t_first_audio=d.get("t_first_audio"), t_play_end=d.get("t_play_end"),
            played=_played(d), latency_s=d.get("latency_s"),
            src_text=d.get("src_text") or "", tgt_text=d.get("tgt_text") or "", out_dur_s=d.get("out_dur_s") or 0.0,
            rate=d.get("rate") or 1.0, asr_pacing=d.get("asr_pacing") or "", mt_note=d.get("mt_note") or "",
            glossary_terms=d.get("glossary_terms") or 0,
            error=d.get("error"), skipped=d.get("skipped"), t0_unix=d.get("t0_unix"), t0_mono=d.get("t0_mono"),
        )


def _played(d: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    """A log line's audio as heard. One from before ``played`` was written is one chunk from
    ``t_first_audio`` (or ``t_speech_end + latency_s``) to ``t_play_end`` (or for ``out_dur_s``);
    seconds NaN when neither says how long it was."""
    if "played" in d:
        return tuple((float(t), float(sec)) for t, sec in d["played"])
    start = d.get("t_first_audio")
    if start is None and d.get("latency_s") is not None and d.get("t_speech_end") is not None:
        start = d["t_speech_end"] + d["latency_s"]
    if start is None:
        return ()
    end, dur = d.get("t_play_end"), d.get("out_dur_s")
    return ((float(start), float(end - start if end is not None else dur if dur is not None else math.nan)),)


def record_problem(d: Any) -> str:
    """What makes ``d`` no latency record ("" if nothing): the keys the readers need, of the right types."""
    if not isinstance(d, dict):
        return f"a JSON {type(d).__name__}, not an object"
    for key in ("src_lang", "tgt_lang"):
        if not isinstance(d.get(key), str):
            return f"no {key}"
    number = (int, float, type(None))
    for key in _NUMBERS:
        if isinstance(d.get(key), bool) or not isinstance(d.get(key), number):
            return f"{key} is not a number"
    played = d.get("played", [])
    if not isinstance(played, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in c)
            for c in played):
        return "played is not a list of [start, seconds]"
    stages = d.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(s, dict) for s in stages.values()):
        return "stages is not a mapping of stages"
    if any(not isinstance(s.get(k), number) or isinstance(s.get(k), bool) for s in stages.values() for k in ("start", "end", "first_out")):
        return "a stage time is not a number"
    terms = d.get("glossary_terms", 0)
    if isinstance(terms, bool) or not isinstance(terms, int):
        return "glossary_terms is not a count"
    if isinstance(d.get("utt_id"), bool) or not isinstance(d.get("utt_id"), int):  # every log has had it
        return "no utt_id"
    return ""


@dataclass
class Clock:
    """Maps the monotonic clock of a run to dates: unix = t0_unix + (t - t0_mono)."""

    t0_mono: float = field(default_factory=time.monotonic)
    t0_unix: float = field(default_factory=time.time)


class Collector:
    """Writes one line per finished utterance, flushed at once, so a crash loses nothing finished.
    The file is created with the first line: a run that ends before any utterance leaves none."""

    def __init__(self, path: Optional[str | Path], clock: Optional[Clock] = None, keep: bool = True):
        self.path = Path(path) if path else None
        self.keep = keep  # False for endless runs: memory stays flat, the log file has everything
        self.clock = clock or Clock()
        self.records: list[UtteranceRecord] = []
        self._file: Optional[BinaryIO] = None
        self._lock = threading.Lock()
        self.failed = ""  # why the log file stopped (a full disk), once it did

    def check(self) -> None:
        if self.path is not None:
            files.check_output(self.path, "--log")

    def record(self, utt: UttInfo) -> UtteranceRecord:
        rec = UtteranceRecord.from_utt(utt, self.clock)
        with self._lock:
            if self.keep:
                self.records.append(rec)
            if self.path is not None:
                self._append((json.dumps(rec.to_json(), ensure_ascii=False) + "\n").encode())
        return rec

    def _append(self, line: bytes) -> None:
        """One whole line or none: a line cut by a full disk is taken back, and the log stops there
        (said once; the translation goes on, and the run's records keep the rest)."""
        assert self.path is not None
        start = None
        try:
            if self._file is None:
                self._file = open(self.path, "ab")
            start = self._file.tell()
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            cause = files.no_room(exc, self.path.parent) or brief(exc)
            self.failed = f"cannot write the latency log {self.path}: {cause} (it holds the utterances before)"
            log.error("%s; the translation goes on", self.failed)
            self._give_up(start)

    def _give_up(self, start: Optional[int]) -> None:
        file, self._file, self.path = self._file, None, None
        if file is None:
            return
        with contextlib.suppress(OSError):
            if start is not None:
                os.ftruncate(file.fileno(), start)  # the file's own call: the buffered one would flush first, and fail
        with contextlib.suppress(OSError, ValueError):
            file.close()  # its buffer's flush fails again: nothing more reaches the file

    def close(self) -> None:
        """Close the log; one that stopped early is raised (once the rest is closed, the run's
        caller makes it the exit): a log that misses utterances must not pass as whole."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self.failed:
                raise DiskFull(f"{self.failed}: free space there, or give --log on another disk")


def read_log(path: str | Path) -> list[UtteranceRecord]:
    """The records of a latency log, old or new; a line that is none is a one-line InputError."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give the latency log file written by s3tvr run --log")
    if not path.is_file():
        raise InputError(f"latency log {path} not found: give the file written by s3tvr run --log")
    records = []
    for n, d in files.read_jsonl(path, "the latency log written by s3tvr run --log"):
        try:
            records.append(UtteranceRecord.from_json(d))
        except ValueError as e:
            raise InputError(f"{path} line {n} is not a latency record ({e}): is this a latency log from s3tvr run?") from None
    return records
